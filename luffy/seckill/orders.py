"""Order writing: a batch of admitted tickets becomes orders in the database, idempotently.

One transaction per sale in the batch. A ticket whose buyer already has an order in the sale
is not written again: the same ticket is a redelivery (bought), another ticket a second buy
(failed); UNIQUE(sale_id, user_id) and UNIQUE(ticket) hold the line if anything else slips.
The stock UPDATE is guarded, so concurrent drainers never sell what the database does not
have.
"""

from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from luffy.extensions import db
from luffy.models import Order, Sale, User
from luffy.models.base import utcnow
from luffy.seckill.keys import BOUGHT, FAILED, SOLD_OUT_IN_DATABASE


@dataclass
class Outcome:
    ticket: str
    code: str  # BOUGHT, FAILED (the unit goes back) or SOLD_OUT_IN_DATABASE (it stays gone)
    msg: str
    written: bool = False  # a new order (not a redelivery of one written before)
    order_id: int | None = None  # read for new orders whose buyer can be told only
    contact: bool = False  # the buyer has a mobile or an e-mail address


def write_batch(batch):
    """Write the orders of ``batch`` (drain Entries); returns [(entry, Outcome)] for each."""
    results, by_sale = [], {}
    for entry in batch:
        if entry.sale_id is None or entry.user_id is None:
            results.append(
                (entry, Outcome(entry.ticket, FAILED, "抢购记录已丢失"))
            )  # Redis lost it
        elif entry.state in (BOUGHT, FAILED):
            results.append((entry, Outcome(entry.ticket, entry.state, "")))  # already finished
        else:
            by_sale.setdefault(entry.sale_id, []).append(entry)
    for sale_id, entries in by_sale.items():
        by_ticket = {entry.ticket: entry for entry in entries}
        pairs = [(entry.ticket, entry.user_id) for entry in entries]
        results += [(by_ticket[o.ticket], o) for o in write_sale_orders(sale_id, pairs)]
    return results


def write_sale_orders(sale_id, entries):
    """The orders of ``entries`` [(ticket, user_id)] in one sale; one by one after a clash."""
    try:
        return write_orders(sale_id, entries)
    except IntegrityError:
        # Someone else wrote one of these orders meanwhile: settle them one by one.
        db.session.rollback()
        outcomes = []
        for entry in entries:
            try:
                outcomes.extend(write_orders(sale_id, [entry]))
            except IntegrityError:
                db.session.rollback()
                outcomes.extend(write_orders(sale_id, [entry]))
        return outcomes


# Built once, with expanding parameters: each batch binds its ids instead of building the
# statement again and coercing a hundred literals.
EXISTING_ORDERS = select(Order.user_id, Order.ticket).where(
    Order.sale_id == bindparam("sale_id"), Order.user_id.in_(bindparam("user_ids", expanding=True))
)
BUYERS = select(User.id, User.mobile, User.email).where(
    User.id.in_(bindparam("user_ids", expanding=True)), User.is_active.is_(True)
)
INSERT_ORDERS = insert(Order.__table__)  # Core executemany: the rows are complete dicts


def write_orders(sale_id, entries):
    """One transaction: the orders of ``entries`` [(ticket, user_id)] in ``sale_id``."""
    session = db.session
    # No row lock here: concurrent drainers would queue behind it for the whole transaction.
    # The guarded stock UPDATE locks the sale row only from there to the commit, and the
    # UNIQUE constraints catch a buyer written by two drainers at once.
    sale = session.scalar(select(Sale).where(Sale.id == sale_id))
    user_ids = {"user_ids": [user_id for _, user_id in entries]}
    existing = dict(session.execute(EXISTING_ORDERS, {"sale_id": sale_id, **user_ids}).all())
    contacts = {
        user_id: bool(mobile or email)
        for user_id, mobile, email in session.execute(BUYERS, user_ids)
    }
    outcomes, new = sort_out(entries, sale, existing, contacts)
    rows = insert_rows(sale, new)
    session.commit()
    # Order ids are only needed for the notices: read them for buyers who can be told.
    notified = [r["ticket"] for r in rows if contacts[r["user_id"]]]
    ids = (
        dict(
            session.execute(select(Order.ticket, Order.id).where(Order.ticket.in_(notified))).all()
        )
        if notified
        else {}
    )
    outcomes += [
        Outcome(r["ticket"], BOUGHT, "抢购成功", True, ids.get(r["ticket"]), contacts[r["user_id"]])
        for r in rows
    ]
    outcomes += [Outcome(ticket, SOLD_OUT_IN_DATABASE, "已售罄") for ticket, _ in new[len(rows) :]]
    return outcomes


def sort_out(entries, sale, existing, contacts):
    """(outcomes of the entries settled without writing, the entries to write)."""
    outcomes, new = [], []
    for ticket, user_id in entries:
        if user_id in existing:
            if existing[user_id] == ticket:
                outcomes.append(Outcome(ticket, BOUGHT, "抢购成功"))  # written before: a redelivery
            else:
                outcomes.append(Outcome(ticket, FAILED, "您已经抢购过该课程"))
        elif sale is None or sale.state != Sale.OPEN:
            outcomes.append(Outcome(ticket, FAILED, "秒杀活动已关闭"))
        elif user_id not in contacts:
            outcomes.append(Outcome(ticket, FAILED, "账号不可用"))
        else:
            new.append((ticket, user_id))
    return outcomes, new


def insert_rows(sale, new):
    """Insert the orders of ``new`` that the database stock covers; returns the rows inserted."""
    if not new:
        return []
    now = utcnow()
    rows = [
        {
            "ticket": ticket,
            "user_id": user_id,
            "course_id": sale.course_id,
            "sale_id": sale.id,
            "price": sale.price,
            "state": Order.CREATED,
            "created_at": now,
        }
        for ticket, user_id in new
    ]
    # The orders first, the stock last: the sale row is locked from the UPDATE to the commit
    # only, so drainers in other slots wait on it for as short a time as possible.
    db.session.execute(INSERT_ORDERS, rows)
    if decrement_stock(sale.id, len(rows)):
        return rows
    # Fewer units left than this batch wants (the sale's last ones): take what is left.
    db.session.rollback()
    rows = rows[: take_stock(sale.id, len(rows))]
    if rows:
        db.session.execute(INSERT_ORDERS, rows)
    return rows


def take_stock(sale_id, wanted):
    """Decrement the database stock by up to ``wanted``; returns how many units were taken.

    The UPDATE is guarded (``remaining_stock >= n``, i.e. ``> 0`` for one unit) and a CHECK
    keeps the column non-negative, so the database never sells what it does not have even if
    Redis admitted too many (after losing writes, say).
    """
    while wanted > 0:
        if decrement_stock(sale_id, wanted):
            return wanted
        left = db.session.scalar(select(Sale.remaining_stock).where(Sale.id == sale_id)) or 0
        wanted = min(wanted, left)
    return 0


def decrement_stock(sale_id, units):
    """Take ``units`` from the database stock if that many are left; True when it did."""
    result = db.session.execute(
        update(Sale)
        .where(Sale.id == sale_id, Sale.remaining_stock >= units)
        .values(remaining_stock=Sale.remaining_stock - units)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
