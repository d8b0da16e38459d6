"""Clover's v3 orders and customers REST endpoints over an ``OrderBook``."""

from __future__ import annotations

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
    parse_page,
)
from sandbox.clover_rejection import Rejection

ALLOWED_FILTER_HEADER = "X-Clover-Allowed-Filter-Fields"
_LINE_ITEM_EXPANSIONS = frozenset({"modifications"})
_NESTED = ("lineItems", "customers", "payments", "orderType")


def _elements(items: list[Any], cap: int) -> dict[str, list[Any]]:
    return {"elements": items[:cap]}


class OrderRenderer:
    """Shapes stored orders as Clover sends them for a given set of expansions."""

    def __init__(self, config: CloverConfig) -> None:
        self._config = config

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
        if order_type is None or "orderType" in expand:
            shown["orderType"] = order_type
        else:
            shown["orderType"] = {"id": order_type.get("id")}

    def _customers(self, customers: list[Doc] | None) -> list[Doc]:
        if self._config.customers_expand_full:
            return list(customers or [])
        # Clover may answer the customers expansion with bare references.
        return [{"id": customer.get("id")} for customer in customers or []]


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
        keep = parse_filters(query.getall("filter", []))
        expand = parse_expand(query.getall("expand", []), ORDER_EXPANSIONS)
        page = self._page(request)
        found = self._book.listing(request.match_info["mId"], keep)
        chosen = found[page.offset : page.offset + page.limit]
        body = {"elements": [self._render.order(doc, expand) for doc in chosen]}
        return web.json_response(
            body, headers={ALLOWED_FILTER_HEADER: ",".join(ALLOWED_FILTER_FIELDS)}
        )

    async def get_order(self, request: web.Request) -> web.Response:
        expand = parse_expand(request.query.getall("expand", []), ORDER_EXPANSIONS)
        doc = self._order(request)
        return web.json_response(self._render.order(doc, expand))

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
