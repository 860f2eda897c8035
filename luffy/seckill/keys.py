"""The flash sale's Redis keys and ticket states: the one place that names them.

Every key carries the hash tag ``{seckill}``: Redis Cluster keeps keys with the same tag in one
slot, and each flash-sale script touches keys of one sale together with the shared queue
(``pending``, the drain slots), so they must share a slot to run there at all. A sale's own
keys are grouped under ``sale:<id>`` inside that tag. The Lua scripts (luffy/seckill/lua/)
build no key: every key they touch arrives in ``KEYS[]`` from the builders below.

  ready                  present while the sale state in Redis is complete (gone after a loss)
  sales                  set of sale ids whose state is in Redis
  course:<course_id>     the id of the course's current (or next, or last) sale
  sale:<id>              hash: stock, total, start, end (epoch s), state, course, queued
  sale:<id>:buyers       hash: user id -> ticket, every buyer holding a unit of this sale
  ticket:<ticket>        hash: sale, user, state, msg, at, tries
  pending                list of tickets waiting for an order
  processing:<slot>      tickets a drainer holding that slot is turning into orders
  drain:lock:<slot>      held by the order task draining in that slot
  drain:kick             an order task is queued or running: buy requests send no message
  drain:fanout           a drainer asked for one more order task a moment ago
  rebuild:kick           a rebuild of the Redis state was asked for a moment ago
  rate:<kind>:<who>:<s>  per-second request counters
  notified:<order>:<how> the buyer of an order was told (by text or mail)
"""

PREFIX = "luffy:{seckill}:"

# Ticket states, as the result API reports them in ``success`` (and the scripts store them;
# luffy/seckill/scripts.py hands these same values to every script).
WAITING, RUNNING, BOUGHT, FAILED = "2", "3", "1", "0"
# An order outcome, not a state: failed, and the unit stays gone (the database had none left).
SOLD_OUT_IN_DATABASE = "x"

READY_KEY = PREFIX + "ready"
SALES_KEY = PREFIX + "sales"
PENDING_KEY = PREFIX + "pending"
KICK_KEY = PREFIX + "drain:kick"
FANOUT_KEY = PREFIX + "drain:fanout"
REBUILD_KICK_KEY = PREFIX + "rebuild:kick"

# Drain slots that may exist; SECKILL_DRAIN_SLOTS of them are used at once. Left-overs are
# looked for in all of them, so lowering SECKILL_DRAIN_SLOTS never strands a batch.
MAX_DRAIN_SLOTS = 8
# A kick older than this is presumed lost (its task died): the next admission kicks again.
KICK_SECONDS = 10


def lock_key(slot):
    return f"{PREFIX}drain:lock:{slot}"


def processing_key(slot):
    return f"{PREFIX}processing:{slot}"


LOCK_KEYS = tuple(lock_key(slot) for slot in range(MAX_DRAIN_SLOTS))
PROCESSING_KEYS = tuple(processing_key(slot) for slot in range(MAX_DRAIN_SLOTS))
# Each slot's lock, then its processing list, slot after slot.
SLOT_KEYS = tuple(
    key for slot in range(MAX_DRAIN_SLOTS) for key in (lock_key(slot), processing_key(slot))
)


def course_key(course_id):
    return f"{PREFIX}course:{course_id}"


def sale_key(sale_id):
    return f"{PREFIX}sale:{sale_id}"


def buyers_key(sale_id):
    return f"{PREFIX}sale:{sale_id}:buyers"


def ticket_key(ticket):
    return f"{PREFIX}ticket:{ticket}"


def rate_key(kind, who, second):
    return f"{PREFIX}rate:{kind}:{who}:{second}"


def notified_key(order_id, channel):
    return f"{PREFIX}notified:{order_id}:{channel}"
