"""The client matrix's application scenario through SQLAlchemy 2's ORM over psycopg 3
(tests/clients.rs).

Usage: sqlalchemy_scenario.py CONNINFO tessera|postgres

Prints one line per observation; tests/clients.rs runs it against Tessera and against a plain
PostgreSQL and compares the outputs.
"""

import datetime
import decimal
import sys

from sqlalchemy import BigInteger, Integer, Numeric, String, create_engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.types import DateTime

conninfo, target = sys.argv[1], sys.argv[2]
START = datetime.datetime(2024, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


def out(*values):
    print(" | ".join(repr(v) for v in values), flush=True)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "sa_customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    country: Mapped[str | None] = mapped_column(String(2))
    # No foreign key in the database: Tessera does not create foreign keys on shards yet.
    orders: Mapped[list["Order"]] = relationship(
        back_populates="customer", order_by="Order.id", primaryjoin="Customer.id == foreign(Order.customer_id)"
    )


class Order(Base):
    __tablename__ = "sa_orders"
    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    amount: Mapped[decimal.Decimal | None] = mapped_column(Numeric(12, 2))
    placed: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    customer: Mapped[Customer] = relationship(
        back_populates="orders", primaryjoin="Customer.id == foreign(Order.customer_id)"
    )


url = "postgresql+psycopg:///?" + "&".join(
    f"{k}={v}" for k, v in (kv.split("=") for kv in conninfo.split())
)
engine = create_engine(url)
Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)
if target == "tessera":
    # Tessera runs create_*_table outside transaction blocks only (yet): autocommit.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT create_reference_table('sa_customers')"))
        conn.execute(text("SELECT create_distributed_table('sa_orders', 'customer_id')"))

with Session(engine) as session:
    session.add_all(
        [Customer(id=i, name=n, country=c) for i, n, c in [(1, "Ana", "PT"), (2, "Zoë", "FR"), (3, "Łukasz", None)]]
    )
    session.flush()
    session.add_all(
        [
            Order(customer_id=i % 3 + 1, id=i, amount=decimal.Decimal(i) / 4, placed=START + datetime.timedelta(hours=i))
            for i in range(1, 16)
        ]
    )
    session.commit()

    for c in session.scalars(select(Customer).order_by(Customer.id)):
        out("customer", c.id, c.name, c.country, [(o.id, o.amount, o.placed) for o in c.orders])
    rows = session.execute(
        select(Customer.name, func.count(Order.id), func.sum(Order.amount))
        .join(Order, Order.customer_id == Customer.id)
        .group_by(Customer.name)
        .order_by(Customer.name)
    ).all()
    out("by customer", rows)

    order = session.get(Order, (2, 4))
    out("get", order.id, order.amount)
    order.amount = decimal.Decimal("99.99")
    session.add(Order(customer_id=1, id=100, amount=1))
    session.rollback()
    out("after rollback", session.scalar(select(func.sum(Order.amount))), session.get(Order, (1, 100)))

    session.add(Order(customer_id=2, id=4, amount=1))
    try:
        session.commit()
    except IntegrityError as e:
        out("integrity error", e.orig.sqlstate, e.orig.diag.constraint_name)
        session.rollback()

    session.execute(Order.__table__.update().where(Order.customer_id == 3).values(amount=Order.amount * 2))
    session.execute(Order.__table__.delete().where(Order.id > 12))
    session.commit()
    out("after commit", session.execute(select(func.count(), func.sum(Order.amount)).select_from(Order)).one())

Base.metadata.drop_all(engine)
out("done")
