"""Images (Glance v2) and flavors (Nova): the fixed catalog, read only."""

from __future__ import annotations

from aiohttp import web

from vim_sim.catalog import FLAVORS, IMAGES, find_flavor, find_image
from vim_sim.errors import ApiError, NovaError
from vim_sim.routing import COMPUTE_PATH, IMAGE_PATH, Route, base_url


class CatalogApi:
    """Lists and shows images and flavors."""

    def routes(self) -> list[Route]:
        """Return the image and flavor endpoints."""
        return [
            Route("GET", f"{IMAGE_PATH}/images", self.list_images, "list_images"),
            Route("GET", f"{IMAGE_PATH}/images/{{image_id}}", self.get_image, "get_image"),
            Route("GET", f"{COMPUTE_PATH}/flavors", self.list_flavors, "list_flavors"),
            Route("GET", f"{COMPUTE_PATH}/flavors/detail", self.list_flavors, "list_flavors"),
            Route("GET", f"{COMPUTE_PATH}/flavors/{{flavor_id}}", self.get_flavor, "get_flavor"),
        ]

    async def list_images(self, request: web.Request) -> web.Response:
        """List the images, optionally `?name=` (exact)."""
        name = request.query.get("name")
        images = [image.as_glance() for image in IMAGES if name in (None, image.name)]
        return web.json_response(
            {"images": images, "schema": "/v2/schemas/images", "first": "/v2/images"}
        )

    async def get_image(self, request: web.Request) -> web.Response:
        """Show one image by id or name; 404 when unknown."""
        ref = request.match_info["image_id"]
        image = find_image(ref)
        if image is None:
            raise ApiError.plain(404, f"No image found with ID {ref}")
        return web.json_response(image.as_glance())

    async def list_flavors(self, request: web.Request) -> web.Response:
        """List the flavors; `/flavors` gives id, name and links, `/flavors/detail` everything."""
        compute_url = f"{base_url(request)}{COMPUTE_PATH}"
        detail = request.path.endswith("/detail")
        flavors = [
            flavor.as_nova(compute_url)
            if detail
            else {"id": flavor.id, "name": flavor.name, "links": flavor.links(compute_url)}
            for flavor in FLAVORS
        ]
        return web.json_response({"flavors": flavors})

    async def get_flavor(self, request: web.Request) -> web.Response:
        """Show one flavor by id or name; 404 `itemNotFound` when unknown."""
        ref = request.match_info["flavor_id"]
        flavor = find_flavor(ref)
        if flavor is None:
            raise NovaError.not_found(f"Flavor {ref} could not be found.")
        return web.json_response({"flavor": flavor.as_nova(f"{base_url(request)}{COMPUTE_PATH}")})
