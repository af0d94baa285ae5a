"""ReceiveBuffer: commit/rollback semantics and zero-copy reads, against a bytes model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.wire import ReceiveBuffer

ops = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), st.binary(max_size=40)),
        st.tuples(st.just("consume"), st.integers(0, 60)),
        st.tuples(st.just("commit"), st.none()),
        st.tuples(st.just("rollback"), st.none()),
    ),
    max_size=60,
)


@given(ops)
def test_buffer_matches_a_bytes_model(program: list[tuple[str, object]]) -> None:
    buf = ReceiveBuffer()
    held = b""  # committed-unconsumed bytes
    taken = 0
    for op, arg in program:
        if op == "feed":
            assert isinstance(arg, bytes)
            buf.feed(arg)
            held += arg
        elif op == "consume":
            assert isinstance(arg, int)
            got = buf.consume(arg)
            if taken + arg > len(held):
                assert got is None
            else:
                assert got is not None and bytes(got) == held[taken : taken + arg]
                taken += arg
        elif op == "commit":
            buf.commit()
            held, taken = held[taken:], 0
        else:
            buf.rollback()
            taken = 0
        assert len(buf) == len(held)
        assert buf.available == len(held) - taken


def test_read_inside_one_part_is_a_view() -> None:
    buf = ReceiveBuffer()
    a, b = b"abcdef", b"ghij"
    buf.feed(a)
    buf.feed(b)
    view = buf.consume(4)
    assert view is not None and view.obj is a
    spanning = buf.consume(4)
    assert spanning is not None and bytes(spanning) == b"efgh"
