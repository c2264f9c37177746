"""IP addressing of subnets and ports: CIDR checks, gateways, pools and address allocation."""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vim_sim.errors import NeutronError
from vim_sim.models import Port, Subnet

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
"""An IPv4 or IPv6 network."""


@dataclass(frozen=True)
class Allocation:
    """An address for a new port: both None on a network without subnets."""

    subnet_id: str | None
    ip_address: str | None


async def allocate_address(session: AsyncSession, network_id: str) -> Allocation | None:
    """Pick the lowest free address of the network's subnets; None when all are full."""
    subnets = list(
        (
            await session.execute(
                select(Subnet)
                .where(Subnet.network_id == network_id)
                .order_by(Subnet.ip_version, Subnet.created_at)
            )
        ).scalars()
    )
    if not subnets:
        return Allocation(subnet_id=None, ip_address=None)
    for subnet in subnets:
        used = set(
            (
                await session.execute(select(Port.ip_address).where(Port.subnet_id == subnet.id))
            ).scalars()
        )
        used.add(subnet.gateway_ip)
        for host in ipaddress.ip_network(subnet.cidr).hosts():
            if str(host) not in used:
                return Allocation(subnet_id=subnet.id, ip_address=str(host))
    return None


def allocation_pool(subnet: Subnet) -> tuple[str, str] | None:
    """Return the first and last address handed to ports, if the subnet has any."""
    net = ipaddress.ip_network(subnet.cidr)
    first = next(iter(net.hosts()), None)
    if first is None:
        return None
    last = net[-2] if net.num_addresses > 2 and net.version == 4 else net[-1]
    start = first + 1 if str(first) == subnet.gateway_ip else first
    return (str(start), str(last)) if start <= last else None


def parse_cidr(text: str, version: int) -> IpNetwork:
    """Parse a subnet CIDR as Neutron does: host bits must be zero, the version must match."""
    try:
        cidr = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f", '{ipaddress.ip_network(text, strict=False)}' is recommended"
        raise NeutronError.bad_request(
            f"Invalid input for operation: '{text}' isn't a recognized IP subnet cidr{hint}."
        ) from exc
    if cidr.version != version:
        raise NeutronError.bad_request(
            f"Invalid input for operation: Cidr {text} does not match ip_version {version}."
        )
    return cidr


def choose_gateway(cidr: IpNetwork, requested: str | None, *, given: bool) -> str | None:
    """Return the subnet's gateway: the first host unless `given`; None asks for no gateway."""
    if not given:
        return str(next(iter(cidr.hosts()), cidr.network_address))
    if requested is None:
        return None
    try:
        gateway = ipaddress.ip_address(requested)
    except ValueError as exc:
        raise NeutronError.bad_request(
            f"Invalid input for gateway_ip: '{requested}' is not a valid IP address."
        ) from exc
    if gateway not in cidr:
        raise NeutronError.bad_request(
            f"Invalid input for operation: Gateway is not valid on subnet {cidr}."
        )
    return str(gateway)
