"""Clover's v3 orders and customers REST endpoints over an ``OrderBook``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.clover_config import CloverConfig
from sandbox.clover_orderbook import Doc, OrderBook
from sandbox.clover_query import (
    ALLOWED_FILTER_FIELDS,
    ORDER_EXPANSIONS,
    Page,
    parse_expand,
    parse_filters,
    parse_order_by,
    parse_page,
)
from sandbox.clover_rejection import Rejection

ALLOWED_FILTER_HEADER = "X-Clover-Allowed-Filter-Fields"
_LINE_ITEM_EXPANSIONS = frozenset({"modifications"})
_NESTED = ("lineItems", "customers", "payments", "orderType")
_RENDER_CACHE_SIZE = 50_000


def _elements(items: list[Any], cap: int) -> dict[str, list[Any]]:
    return {"elements": items[:cap]}


class OrderRenderer:
    """Shapes stored orders as Clover sends them for a given set of expansions.

    Rendered JSON is kept per order version (``modifiedTime`` changes with every
    write) and expansion set, so repeated polls of unchanged orders cost little.
    """

    def __init__(self, config: CloverConfig) -> None:
        self._config = config
        self._rendered: dict[tuple[object, ...], bytes] = {}

    def order_json(self, merchant_id: str, doc: Doc, expand: frozenset[str]) -> bytes:
        """The order as JSON bytes, from the cache when this version was seen."""
        config = self._config
        key = (
            merchant_id,
            doc["id"],
            doc["modifiedTime"],
            expand,
            config.expanded_list_cap,
            config.customers_expand_full,
        )
        found = self._rendered.get(key)
        if found is None:
            if len(self._rendered) >= _RENDER_CACHE_SIZE:
                self._rendered.clear()
            found = json.dumps(self.order(doc, expand)).encode()
            self._rendered[key] = found
        return found

    def order(self, doc: Doc, expand: frozenset[str]) -> Doc:
        shown = {key: value for key, value in doc.items() if key not in _NESTED}
        self._order_type(doc, expand, shown)
        cap = self._config.expanded_list_cap
        if expand & {"lineItems", "lineItems.modifications"}:
            with_mods = "lineItems.modifications" in expand
            items = [self.line_item(i, with_mods) for i in doc.get("lineItems") or []]
            shown["lineItems"] = _elements(items, cap)
        if "customers" in expand and "customers" in doc:
            shown["customers"] = _elements(self._customers(doc["customers"]), cap)
        if "payments" in expand and "payments" in doc:
            shown["payments"] = _elements(list(doc["payments"] or []), cap)
        return shown

    def line_item(self, item: Doc, with_modifications: bool) -> Doc:
        shown = {key: value for key, value in item.items() if key != "modifications"}
        if with_modifications and item.get("modifications"):
            cap = self._config.expanded_list_cap
            shown["modifications"] = _elements(list(item["modifications"]), cap)
        return shown

    def _order_type(self, doc: Doc, expand: frozenset[str], shown: Doc) -> None:
        if "orderType" not in doc:
            return
        order_type = doc["orderType"]
        if isinstance(order_type, dict) and "orderType" not in expand:
            shown["orderType"] = {"id": order_type.get("id")}
        else:
            shown["orderType"] = order_type

    def _customers(self, customers: list[Doc] | None) -> list[Doc]:
        if self._config.customers_expand_full:
            return list(customers or [])
        # Clover may answer the customers expansion with bare references.
        return [
            {"id": customer.get("id")} if isinstance(customer, dict) else customer
            for customer in customers or []
        ]


class OrdersApi:
    """Request handlers for orders, line items and customers of one merchant."""

    def __init__(self, book: OrderBook, config: CloverConfig) -> None:
        self._book = book
        self._config = config
        self._render = OrderRenderer(config)

    def add_routes(self, app: web.Application) -> None:
        base = "/v3/merchants/{mId}"
        app.router.add_get(f"{base}/orders", self.list_orders, name="orders.list")
        app.router.add_get(
            f"{base}/orders/{{orderId}}", self.get_order, name="orders.get"
        )
        app.router.add_get(
            f"{base}/orders/{{orderId}}/line_items",
            self.list_line_items,
            name="orders.line_items",
        )
        app.router.add_get(
            f"{base}/customers/{{customerId}}", self.get_customer, name="customers.get"
        )

    async def list_orders(self, request: web.Request) -> web.Response:
        query = request.query
        selection = parse_filters(query.getall("filter", []))
        expand = parse_expand(query.getall("expand", []), ORDER_EXPANSIONS)
        ordering = parse_order_by(query.getall("orderBy", []))
        page = self._page(request)
        merchant_id = request.match_info["mId"]
        found = self._book.listing(merchant_id, selection.keep, selection.since_ms)
        found = ordering.sort(found)
        chosen = found[page.offset : page.offset + page.limit]
        parts = [self._render.order_json(merchant_id, doc, expand) for doc in chosen]
        return web.Response(
            body=b'{"elements": [' + b", ".join(parts) + b"]}",
            content_type="application/json",
            headers={ALLOWED_FILTER_HEADER: ",".join(ALLOWED_FILTER_FIELDS)},
        )

    async def get_order(self, request: web.Request) -> web.Response:
        expand = parse_expand(request.query.getall("expand", []), ORDER_EXPANSIONS)
        doc = self._order(request)
        body = self._render.order_json(request.match_info["mId"], doc, expand)
        return web.Response(body=body, content_type="application/json")

    async def list_line_items(self, request: web.Request) -> web.Response:
        expand = parse_expand(request.query.getall("expand", []), _LINE_ITEM_EXPANSIONS)
        page = self._page(request)
        items = self._order(request).get("lineItems") or []
        chosen = items[page.offset : page.offset + page.limit]
        shown = [self._render.line_item(i, "modifications" in expand) for i in chosen]
        return web.json_response({"elements": shown})

    async def get_customer(self, request: web.Request) -> web.Response:
        customer_id = request.match_info["customerId"]
        found = self._book.customer(request.match_info["mId"], customer_id)
        if found is None:
            raise Rejection("Customer not found", status=404, outcome="not_found")
        return web.json_response(found)

    def _order(self, request: web.Request) -> Doc:
        doc = self._book.get(request.match_info["mId"], request.match_info["orderId"])
        if doc is None:
            raise Rejection("Order not found", status=404, outcome="not_found")
        return doc

    def _page(self, request: web.Request) -> Page:
        return parse_page(
            request.query.get("limit"),
            request.query.get("offset"),
            self._config.default_page_limit,
            self._config.max_page_limit,
        )
