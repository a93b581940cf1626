"""The README's tour through a client generated from /openapi.json by
openapi-python-client: create, get, list, status changes, stats, delete.

Run by tests/api/client.rs against the demo binary, with the generated
package `commandes_client` on PYTHONPATH and COMMANDES_BASE and
COMMANDES_TOKEN in the environment. The client raises on any status the
document does not declare for the operation, so this also checks that each
operation declares what it answers.
"""

import os
import sys
import uuid

from commandes_client import AuthenticatedClient, Client
from commandes_client.api.orders import (
    create_order,
    delete_order,
    get_order,
    list_customer_orders,
    list_orders,
    update_order_status,
)
from commandes_client.api.service import service_info
from commandes_client.api.stats import get_stats
from commandes_client.models import NewOrder, Order, Problem, Status, StatusObject

base = os.environ["COMMANDES_BASE"]
token = os.environ["COMMANDES_TOKEN"]
# Any status the document does not declare for an operation is an error.
client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
public = Client(base_url=base, raise_on_unexpected_status=True)


def check(condition, what):
    if not condition:
        print(f"client tour: {what}", file=sys.stderr)
        sys.exit(1)


info = service_info.sync(client=public)
check(info is not None and info.service == "commandes", f"GET /: {info}")
print(f"service {info.version} ({info.revision}) on {info.storage}")

# Create (a fresh order_id: the demo holds its own 300 orders).
order_id = f"TOUR-{uuid.uuid4().hex[:8]}"
created = create_order.sync_detailed(
    client=client,
    body=NewOrder(order_id=order_id, customer_id="CUST-TOUR", total_amount="42.50"),
)
check(created.status_code == 201, f"create: {created.status_code} {created.content!r}")
order = created.parsed
check(isinstance(order, Order), f"create parsed: {order!r}")
check(order.total_amount == "42.50" and order.status == Status.PENDING, f"created: {order}")
print(f"created {order.order_id} as id {order.id}")

# Read it back, and find it in the lists.
got = get_order.sync(order.id, client=client)
check(isinstance(got, Order) and got.order_id == order_id, f"get: {got!r}")
mine = list_customer_orders.sync("CUST-TOUR", client=client)
check(isinstance(mine, list) and [o.order_id for o in mine] == [order_id], f"customer list: {mine!r}")
pending = list_orders.sync(client=client, customer_id="CUST-TOUR", limit=5)
check(isinstance(pending, list) and len(pending) == 1, f"list: {pending!r}")

# Move it along: a bare status, then the object form.
moved = update_order_status.sync(order.id, client=client, body=Status.PROCESSING)
check(isinstance(moved, Order) and moved.status == Status.PROCESSING, f"processing: {moved!r}")
done = update_order_status.sync(order.id, client=client, body=StatusObject(status=Status.COMPLETED))
check(isinstance(done, Order) and done.status == Status.COMPLETED, f"completed: {done!r}")
# A final status stays: a 409 problem, parsed.
refused = update_order_status.sync_detailed(order.id, client=client, body=Status.PENDING)
check(refused.status_code == 409 and isinstance(refused.parsed, Problem), f"409: {refused!r}")
check(refused.parsed.current_status == "completed", f"409 body: {refused.parsed!r}")

# Figures over all orders (the demo's 300 and this one).
stats = get_stats.sync(client=client)
check(stats is not None and stats.total_orders >= 301, f"stats: {stats!r}")
print(f"stats: {stats.total_orders} orders, {stats.total_amount} in all")

# Delete it; then it is a 404 problem.
deleted = delete_order.sync_detailed(order.id, client=client)
check(deleted.status_code == 204, f"delete: {deleted.status_code} {deleted.content!r}")
gone = get_order.sync_detailed(order.id, client=client)
check(gone.status_code == 404 and isinstance(gone.parsed, Problem), f"after delete: {gone!r}")

print("client tour: ok")
