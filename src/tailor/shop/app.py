"""The demo shop as an ASGI app, mounted by the BentoML service at /shop when
`serving.demo_shop` is on (`tailor serve --demo-shop`).

Reads the pages (`tailor/shop/pages/`: one frame, `layout.html`, with the header, switcher
and footer every page shares, and each page's own content) and the style sheet and script
under `tailor/shop/static/`, the warehouse (`tailor.shop.catalogue`, on the
first request that needs it and every `CATALOGUE_SECONDS` after), the identity secret
(`tailor.events.identity`) and the serving pipeline of its worker process
(`tailor.serving.pipeline.ServingPipeline`, handed over by the service once it has started).
Writes the demo shop's public key
(`tailor.shop.publishable_key`); the pipeline writes its prediction log as for any answer.

Routes, below the mount point:

- `GET /` (or `/index.html`), `/product.html`, `/cart.html`, `/checkout.html`: the pages,
  each its content in the shared frame; the static files `shop.css`, `shop.js`; `GET /config.js`: the collector's endpoint (`/collect/v1/events`) and the
  demo shop's public key, for tailor.js.
- `GET /api/catalogue`: the products and the known customers of the "who am I" switcher.
- `GET /api/identity?customer_id=`: that customer's identity signature, as a shop's own
  server computes it at login (None without an identity secret).
- `POST /api/homepage`, `/api/also_bought`, `/api/checkout_offer`: the bodies of the
  serving API (`tailor.serving.schemas`), answered by the pipeline in process, so the page
  sees exactly what `POST /homepage` answers; a body that breaks a rule gets 400 naming
  the field.

The `/api/` routes carry no key, so one token bucket per worker
(`serving.demo_shop_rate_per_second`, all visitors together) bounds what they can cost the
server: over it, 429 with `Retry-After`.

Why same-origin routes rather than a key in the page: the serving API needs a secret key
with `recommendations:read`, which must never reach a browser. These routes carry no key
at all and answer only what the demo needs; they exist only when the demo shop is on,
which is meant for demo homes (the switcher may ask for any customer's list and sign in as
any customer; `tailor serve` says so when it starts).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from string import Template
from typing import Any, Callable

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tailor.config import Settings
from tailor.serving.schemas import AlsoBoughtRequest, CheckoutOfferRequest, HomepageRequest
from tailor.web.rate_limit import RateLimiter, retry_after_header
from tailor.web.security_headers import API_POLICY, SecurityHeadersMiddleware

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES_DIR = Path(__file__).resolve().parent / "pages"
# Each page: its title, and the name the script reads from <body data-page>.
PAGES: dict[str, tuple[str, str]] = {"index.html": ("Home", "home"),
                                     "product.html": ("Product", "product"),
                                     "cart.html": ("Cart", "cart"),
                                     "checkout.html": ("Checkout", "checkout")}
COLLECTOR_PREFIX = "/collect"  # where the BentoML service mounts the event collector
MAX_BODY_BYTES = 64_000
CATALOGUE_SECONDS = 300.0  # a rebuilt warehouse (a new `make demo`) shows within this
API_HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy": API_POLICY}


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=API_HEADERS)


def _validation_message(error: ValidationError) -> str:
    """The first problem of a body, naming its field (`k`, `cart.0.quantity`)."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


class ShopState:
    """What the routes share: settings, the worker's pipeline (None until the service has
    started it), the catalogue (read again after `CATALOGUE_SECONDS`, at once while there is
    none), the identity check and the public key."""

    def __init__(self, settings: Settings, public_key: str) -> None:
        from tailor.events.identity import IdentityCheck

        self.settings = settings
        self.public_key = public_key
        self.pipeline: Any = None
        self.identity = IdentityCheck.from_settings(settings)
        self._catalogue: dict[str, Any] | None = None
        self._catalogue_read = 0.0

    def catalogue(self) -> dict[str, Any]:
        stale = time.monotonic() - self._catalogue_read > CATALOGUE_SECONDS
        if self._catalogue is None or self._catalogue.get("error") or stale:
            from tailor.shop.catalogue import load_shop_catalogue

            self._catalogue = load_shop_catalogue(self.settings).to_dict()
            self._catalogue_read = time.monotonic()
        return self._catalogue


def render_page(name: str) -> str:
    """The whole HTML of page `name` (a key of `PAGES`): its content in the shared frame."""
    title, page = PAGES[name]
    frame = Template((PAGES_DIR / "layout.html").read_text(encoding="utf-8"))
    return frame.substitute(title=title, page=page,
                            main=(PAGES_DIR / name).read_text(encoding="utf-8"))


def _serving_page(html: str) -> Callable[[Request], Any]:
    async def route(request: Request) -> Response:
        return HTMLResponse(html)

    return route


def _answering(schema: type[BaseModel], method: str) -> Callable[[Request], Any]:
    """A route that validates its body with `schema` and answers with the pipeline's
    async `method` (`ahomepage`, `aalso_bought`, `acheckout_offer`)."""

    async def route(request: Request) -> Response:
        state: ShopState = request.app.state.shop
        if state.pipeline is None:
            return _json({"error": "the serving pipeline is starting; try again"}, 503)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _json({"error": f"body over {MAX_BODY_BYTES:,} bytes"}, 413)
        try:
            parsed = schema.model_validate(json.loads(body or b"null"))
        except json.JSONDecodeError:
            return _json({"error": "body: not JSON"}, 400)
        except ValidationError as error:
            return _json({"error": _validation_message(error)}, 400)
        answer = await getattr(state.pipeline, method)(parsed)
        return _json(answer.model_dump(mode="json"))

    return route


async def catalogue(request: Request) -> Response:
    """`GET /api/catalogue`: products, categories and the switcher's known customers."""
    state: ShopState = request.app.state.shop
    return _json(await run_in_threadpool(state.catalogue))


async def identity(request: Request) -> Response:
    """`GET /api/identity?customer_id=`: the id's signature for tailor.identify()."""
    from tailor.events.identity import sign_customer_id

    customer_id = request.query_params.get("customer_id", "").strip()
    if not customer_id or len(customer_id) > 128:
        return _json({"error": "customer_id: must be 1 to 128 characters"}, 400)
    secret = request.app.state.shop.identity.secret()
    signature = sign_customer_id(secret, customer_id) if secret else None
    return _json({"customer_id": customer_id, "signature": signature})


async def config_script(request: Request) -> Response:
    """`GET /config.js`: where tailor.js sends events, and the demo shop's public key."""
    state: ShopState = request.app.state.shop
    body = "window.TAILOR_SHOP = " + json.dumps({
        "endpoint": COLLECTOR_PREFIX + "/v1/events", "key": state.public_key,
        "tracker": COLLECTOR_PREFIX + "/tailor.js"}) + ";\n"
    return Response(body, media_type="application/javascript",
                    headers={"Cache-Control": "no-store"})


class ApiRateLimit:
    """ASGI middleware: the `/api/` routes share one token bucket; over it, 429 with
    `Retry-After` before the request is read."""

    def __init__(self, app: Any, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/api/"):
            wait = self.limiter.acquire("api")
            if wait > 0:
                response = _json({"error": "the demo shop is busy: too many requests; "
                                           "try again"}, 429)
                response.headers["Retry-After"] = retry_after_header(wait)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_shop_app(settings: Settings, public_key: str | None = None,
                    clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The demo shop app (mount it at /shop); set `app.state.shop.pipeline` once the
    worker's pipeline exists.

    Args:
        settings: the server's settings (home, warehouse, identity secret, keys file).
        public_key: the key handed to tailor.js (default: the home's demo shop key,
            `tailor.shop.publishable_key.demo_shop_key`, created on first use).
        clock: the rate limit's monotonic seconds (tests pass their own).
    """
    if public_key is None:
        from tailor.shop.publishable_key import demo_shop_key

        public_key = demo_shop_key(settings)
    routes = [
        Route("/config.js", config_script, methods=["GET"]),
        Route("/api/catalogue", catalogue, methods=["GET"]),
        Route("/api/identity", identity, methods=["GET"]),
        Route("/api/homepage", _answering(HomepageRequest, "ahomepage"), methods=["POST"]),
        Route("/api/also_bought", _answering(AlsoBoughtRequest, "aalso_bought"),
              methods=["POST"]),
        Route("/api/checkout_offer", _answering(CheckoutOfferRequest, "acheckout_offer"),
              methods=["POST"]),
        Route("/", _serving_page(render_page("index.html")), methods=["GET"]),
        *[Route(f"/{name}", _serving_page(render_page(name)), methods=["GET"])
          for name in PAGES],
        Mount("/", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    rate = settings.serving_demo_shop_rate_per_second
    app = Starlette(routes=routes, middleware=[
        Middleware(SecurityHeadersMiddleware, page_prefixes=("/",),
                   hsts_max_age=settings.serving_hsts_max_age_seconds),
        Middleware(ApiRateLimit, limiter=RateLimiter(rate, 2 * rate, clock=clock))])
    app.state.shop = ShopState(settings, public_key)
    return app
