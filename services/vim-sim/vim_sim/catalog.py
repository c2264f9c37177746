"""The fixed images and flavors every simulated project sees, looked up by id or by name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Image:
    """A Glance image; `min_disk` is in GiB, `size` in bytes."""

    id: str
    name: str
    size: int
    min_disk: int = 0
    min_ram: int = 0
    disk_format: str = "qcow2"

    def as_glance(self) -> dict[str, object]:
        """Render the image as Glance v2 does."""
        return {
            "id": self.id,
            "name": self.name,
            "status": "active",
            "visibility": "public",
            "protected": False,
            "disk_format": self.disk_format,
            "container_format": "bare",
            "size": self.size,
            "min_disk": self.min_disk,
            "min_ram": self.min_ram,
            "tags": [],
            "os_hidden": False,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "self": f"/v2/images/{self.id}",
            "file": f"/v2/images/{self.id}/file",
            "schema": "/v2/schemas/image",
        }


@dataclass(frozen=True)
class Flavor:
    """A Nova flavor; `ram` is in MiB, `disk` in GiB."""

    id: str
    name: str
    vcpus: int
    ram: int
    disk: int

    def as_nova(self, compute_url: str) -> dict[str, object]:
        """Render the flavor as Nova's `flavors/detail` does."""
        return {
            "id": self.id,
            "name": self.name,
            "vcpus": self.vcpus,
            "ram": self.ram,
            "disk": self.disk,
            "swap": 0,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": True,
            "rxtx_factor": 1.0,
            "description": None,
            "extra_specs": {},
            "links": self.links(compute_url),
        }

    def as_server_flavor(self, compute_url: str) -> dict[str, object]:
        """Render the flavor as embedded in a server (`id` and `original_name` both given)."""
        return {
            "id": self.id,
            "original_name": self.name,
            "vcpus": self.vcpus,
            "ram": self.ram,
            "disk": self.disk,
            "ephemeral": 0,
            "swap": 0,
            "extra_specs": {},
            "links": self.links(compute_url)[1:],
        }

    def links(self, compute_url: str) -> list[dict[str, str]]:
        """Return the self and bookmark links Nova gives a flavor."""
        return [
            {"rel": "self", "href": f"{compute_url}/flavors/{self.id}"},
            {"rel": "bookmark", "href": f"{compute_url.rsplit('/', 1)[0]}/flavors/{self.id}"},
        ]


IMAGES: tuple[Image, ...] = (
    Image("0b8a6c8e-6c7d-4a8b-9e8e-2c2a1e0f2204", "ubuntu-22.04", 676_000_000, min_disk=3),
    Image("5d2f1b0a-91c4-4c47-8a4e-3f7d0c9e1d12", "debian-12", 520_000_000, min_disk=2),
    Image("8c1e9d7a-2f3b-4e5c-9a6d-0b1c2d3e4f06", "cirros-0.6", 21_000_000),
)
"""The images of every project (ids are stable across runs)."""

FLAVORS: tuple[Flavor, ...] = (
    Flavor("1", "m1.tiny", vcpus=1, ram=512, disk=1),
    Flavor("2", "m1.small", vcpus=1, ram=2048, disk=20),
    Flavor("3", "m1.medium", vcpus=2, ram=4096, disk=40),
    Flavor("4", "m1.large", vcpus=4, ram=8192, disk=80),
    Flavor("5", "m1.xlarge", vcpus=8, ram=16384, disk=160),
)
"""The flavors of every project, with Nova's classic ids."""


def find_image(ref: str) -> Image | None:
    """Return the image whose id or name is `ref`, if any."""
    return next((image for image in IMAGES if ref in (image.id, image.name)), None)


def find_flavor(ref: str) -> Flavor | None:
    """Return the flavor whose id or name is `ref`, if any."""
    return next((flavor for flavor in FLAVORS if ref in (flavor.id, flavor.name)), None)
