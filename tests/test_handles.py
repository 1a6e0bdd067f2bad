"""Handle / TimerHandle: what call_soon, call_later and call_at give back.

Each test runs on asyncio's loop and on tidal's: the handles must look and
behave like asyncio's (isinstance, cancel, when, ordering, repr, context).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import weakref

import pytest


def noop(*args):
    pass


def run_one_turn(loop):
    loop.stop()
    loop.run_forever()


def test_handles_are_asyncio_handles(loop):
    h = loop.call_soon(noop)
    t = loop.call_later(10, noop)
    a = loop.call_at(loop.time() + 10, noop)
    assert isinstance(h, asyncio.Handle)
    assert not isinstance(h, asyncio.TimerHandle)
    assert isinstance(t, asyncio.TimerHandle) and isinstance(a, asyncio.TimerHandle)
    # Both kinds are weak-referenceable, as asyncio's are.
    assert weakref.ref(h)() is h and weakref.ref(t)() is t
    for x in (h, t, a):
        x.cancel()


def test_cancel_prevents_run_and_is_idempotent(loop):
    seen = []
    h = loop.call_soon(seen.append, "soon")
    t = loop.call_later(0, seen.append, "later")
    assert not h.cancelled() and not t.cancelled()
    h.cancel()
    h.cancel()
    t.cancel()
    assert h.cancelled() and t.cancelled()
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == []


def test_cancel_after_run_is_harmless(loop):
    seen = []
    h = loop.call_soon(seen.append, 1)
    t = loop.call_later(0, seen.append, 2)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == [1, 2]
    before = loop._timer_cancelled_count
    h.cancel()
    t.cancel()
    assert h.cancelled() and t.cancelled()
    # The timer left the heap when it ran: cancelling it now must not count
    # it as a cancelled timer still in the heap.
    assert loop._timer_cancelled_count == before


def test_timer_cancel_counts_once(loop):
    t = loop.call_later(10, noop)
    before = loop._timer_cancelled_count
    t.cancel()
    t.cancel()
    assert loop._timer_cancelled_count == before + 1


def test_a_loop_subclass_hears_of_each_cancel(loop_factory):
    # A cancel asks the loop through its two methods; a subclass that
    # overrides them is asked (tidal's own class is answered in C).
    probe = loop_factory()
    base = type(probe)
    probe.close()
    heard = []

    class Loop(base):
        def _timer_handle_cancelled(self, handle):
            heard.append(("timer", handle))
            super()._timer_handle_cancelled(handle)

        def get_debug(self):
            heard.append("debug")
            return True

    lp = Loop()
    try:
        t = lp.call_later(10, noop)
        h = lp.call_soon(noop)
        # Each cancel asks get_debug() at least once (3.13's repr asks
        # again); only the timer's is counted, and only the first time.
        heard.clear()
        t.cancel()
        assert heard[0] == ("timer", t) and set(heard[1:]) == {"debug"}
        heard.clear()
        h.cancel()
        assert heard and set(heard) == {"debug"}
        heard.clear()
        t.cancel()
        assert heard == []
        assert lp._timer_cancelled_count == 1
        # get_debug() said True: each keeps its repr from before the cancel.
        assert "noop" in t._repr and "noop" in h._repr
    finally:
        lp.close()


def test_loop_subclasses_below_an_override_are_asked_too(loop_factory):
    # A subclass that keeps both methods is answered as the loop class is
    # (compiled: in C); one below a class that overrides get_debug is still
    # asked through it, and both count a cancelled timer once.
    probe = loop_factory()
    base = type(probe)
    probe.close()
    heard = []

    class Plain(base):
        pass

    class Debugging(base):
        def get_debug(self):
            heard.append("debug")
            return True

    class BelowDebugging(Debugging):
        pass

    for cls, asked in ((Plain, False), (Debugging, True), (BelowDebugging, True)):
        lp = cls()
        try:
            heard.clear()
            t = lp.call_later(10, noop)
            t.cancel()
            t.cancel()
            assert bool(heard) is asked, cls
            assert lp._timer_cancelled_count == 1
            assert (t._repr is not None) is asked  # get_debug() said True
        finally:
            lp.close()


def test_a_cancel_in_debug_mode_keeps_the_repr(loop):
    loop.set_debug(True)
    t = loop.call_later(10, noop)
    h = loop.call_soon(noop)
    t.cancel()
    h.cancel()
    assert "noop" in t._repr and "noop" in h._repr and "cancelled" in repr(t)
    assert loop._timer_cancelled_count == 1
    loop.set_debug(False)
    t2 = loop.call_later(10, noop)
    t2.cancel()
    assert t2._repr is None and loop._timer_cancelled_count == 2


def test_timer_when(loop):
    when = loop.time() + 12.5
    t = loop.call_at(when, noop)
    assert t.when() == when
    t0 = loop.time()
    t2 = loop.call_later(3, noop)
    assert t0 + 3 <= t2.when() <= loop.time() + 3
    t.cancel()
    t2.cancel()


def test_timer_ordering_and_equality(loop):
    base = loop.time() + 100
    a = loop.call_at(base, noop)
    b = loop.call_at(base + 1, noop)
    a2 = loop.call_at(base, noop)
    assert a < b and b > a and a <= b and b >= a
    assert not (b < a) and not (a > b)
    assert a <= a2 and a >= a2
    # asyncio's equality: same time, callback, args and cancelled state.
    assert a == a2 and a != b
    assert len({a, b, a2}) == 3 or hash(a) == hash(a2)
    assert sorted([b, a]) == [a, b]
    for t in (a, b, a2):
        t.cancel()


def test_timer_compared_with_other_types(loop):
    t = loop.call_later(10, noop)
    h = loop.call_soon(noop)
    assert (t == 1) is False
    assert (t != "x") is True
    with pytest.raises(TypeError):
        t < 1  # noqa: B015
    with pytest.raises(TypeError):
        t > 1  # noqa: B015
    with pytest.raises(TypeError):
        t <= 1  # noqa: B015
    with pytest.raises(TypeError):
        t < h  # noqa: B015
    with pytest.raises(TypeError):
        sorted([t, 1])
    t.cancel()
    h.cancel()


def test_handle_repr(loop):
    h = loop.call_soon(noop, 1, "a")
    # 3.13 stopped showing the arguments outside debug mode.
    shown = "noop()" if sys.version_info >= (3, 13) else "noop(1, 'a')"
    code = noop.__code__
    assert repr(h) == f"<Handle {shown} at {code.co_filename}:{code.co_firstlineno}>"
    t = loop.call_at(1234.5, noop)
    assert repr(t).startswith("<TimerHandle when=1234.5 noop() at ")
    h.cancel()
    t.cancel()
    assert repr(h) == "<Handle cancelled>"
    assert repr(t) == "<TimerHandle cancelled when=1234.5>"


def _context_of(handle):
    # Handle.get_context() is new in 3.12; 3.11 keeps the same context in _context.
    getter = getattr(handle, "get_context", None)
    return getter() if getter is not None else handle._context


def test_handle_context(loop):
    var = contextvars.ContextVar("var", default="unset")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    h = loop.call_soon(noop, context=ctx)
    t = loop.call_later(1, noop, context=ctx)
    assert _context_of(h) is ctx and _context_of(t) is ctx
    # Without context=, each handle gets its own copy of the current context.
    h2 = loop.call_soon(noop)
    h3 = loop.call_soon(noop)
    assert isinstance(_context_of(h2), contextvars.Context)
    assert _context_of(h2) is not _context_of(h3)
    assert var not in _context_of(h2)
    for x in (h, t, h2, h3):
        x.cancel()


# Compiled, a context a handle or timer copied and then dropped is kept for
# the next copy (_handle_layout.h).  A copy must still be a copy: the
# caller's variables at the call, nothing a callback set in an earlier one,
# no value kept alive once dropped, and a weak reference to it sees it die.

COPY_VAR: contextvars.ContextVar[object] = contextvars.ContextVar("copy_var", default="unset")


def test_each_copied_context_has_the_callers_variables_and_no_others(loop):
    seen = []

    def set_and_record(tag):
        seen.append((tag, COPY_VAR.get()))
        COPY_VAR.set(f"set by {tag}")  # in the handle's copy only

    def schedule(tag, value, later):
        if value is not None:
            COPY_VAR.set(value)
        if later:
            loop.call_later(0, set_and_record, tag)
        else:
            loop.call_soon(set_and_record, tag)

    # Round after round, so that later handles and timers get copies their
    # predecessors dropped: each sees what its caller had, never what a
    # callback set.
    for rnd in range(3):
        for i, later in enumerate((False, True) * 20):
            value = None if i % 3 == 0 else f"r{rnd}.{i}"
            contextvars.Context().run(schedule, (rnd, i), value, later)
        loop.call_later(0.001, loop.stop)
        loop.run_forever()
    # (Sorted: a round's timers run after its handles.)
    assert sorted(seen) == [
        ((rnd, i), "unset" if i % 3 == 0 else f"r{rnd}.{i}") for rnd in range(3) for i in range(40)
    ]
    assert COPY_VAR.get() == "unset"


def test_a_dropped_context_copy_keeps_no_value_alive(loop):
    import threading

    class Value:
        pass

    probes = []

    def schedule():
        value = Value()
        probes.append(weakref.ref(value))
        COPY_VAR.set(value)
        loop.call_soon_threadsafe(noop)
        loop.call_soon_threadsafe(noop)
        loop.call_later(0, noop)  # (not threadsafe: the loop is not running)

    for _ in range(3):
        t = threading.Thread(target=schedule)
        t.start()
        t.join()
        loop.call_later(0.001, loop.stop)
        loop.run_forever()
    # The threads are gone, their handles ran: nothing holds the values.
    assert all(_collected(p) for p in probes)


def test_a_weakly_referenced_context_copy_dies_when_dropped(loop):
    h = loop.call_soon(noop)
    t = loop.call_later(0, noop)
    refs = [weakref.ref(_context_of(h)), weakref.ref(_context_of(t))]
    del h, t
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert [r() for r in refs] == [None, None]


def test_a_context_copy_held_after_its_handle_ran_is_kept_as_left(loop):
    h = loop.call_soon(COPY_VAR.set, "set in the handle")
    ctx = _context_of(h)
    del h
    run_one_turn(loop)
    for _ in range(5):  # later copies do not reuse it
        loop.call_soon(COPY_VAR.set, "set later")
    run_one_turn(loop)
    assert ctx[COPY_VAR] == "set in the handle"
    assert COPY_VAR.get() == "unset"


def test_handle_args_are_passed_unchanged(loop):
    got = []
    marker = object()
    loop.call_soon(lambda *a: got.append(a), 1, marker, None)
    loop.call_later(0, lambda *a: got.append(a), "t", marker)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert got == [(1, marker, None), ("t", marker)]


def test_cancel_from_earlier_callback_in_same_turn(loop):
    seen = []
    late = []

    def first():
        seen.append("first")
        late[0].cancel()
        late[1].cancel()

    loop.call_soon(first)
    late.append(loop.call_soon(seen.append, "second"))
    # Two timers already due: both move to the ready queue in this turn,
    # the first cancels the second after it left the heap.
    past = loop.time() - 1
    late.append(loop.call_at(past + 0.5, seen.append, "timer b"))
    loop.call_at(past, late[1].cancel)
    run_one_turn(loop)
    assert seen == ["first"]


def test_timer_handle_cancelled_while_ready_not_run(loop):
    seen = []
    past = loop.time() - 1
    b = loop.call_at(past + 0.001, seen.append, "b")
    loop.call_at(past, b.cancel)
    run_one_turn(loop)
    assert seen == []
    assert b.cancelled()
    # b had already left the heap: it is not counted as a cancelled timer.
    assert loop._timer_cancelled_count == 0


def test_handle_fields_are_asyncio_fields(loop):
    # The compiled loop fills asyncio's __slots__ directly (C structs checked
    # against asyncio's layout at import): every field reads back as asyncio's
    # own constructor would have set it, through asyncio's own accessors.
    ctx = contextvars.copy_context()
    args = (1, "two")
    h = loop.call_soon(noop, *args)
    t = loop.call_later(10, noop, *args, context=ctx)
    for x in (h, t):
        assert x._callback is noop and x._args == args
        assert x._cancelled is False and x.cancelled() is False
        assert x._repr is None and x._source_traceback is None
        assert x._loop is loop
    assert isinstance(h._context, contextvars.Context)
    assert t._context is ctx
    assert t.when() == t._when and t._scheduled is True
    assert "noop" in repr(h) and "when=" in repr(t)
    for x in (h, t):
        x.cancel()
        assert x.cancelled() and x._callback is None and x._args is None


def test_handle_cycles_are_collected(loop):
    # A handle whose callback refers back to it: the garbage collector must
    # see through the handle's slots, or the cycle leaks.
    import gc

    class Holder:
        pass

    holder = Holder()
    h = loop.call_later(10, noop, holder)
    holder.handle = h
    probe = weakref.ref(holder)
    h.cancel()
    run_one_turn(loop)  # the cancelled timer leaves the heap
    del holder, h
    gc.collect()
    assert probe() is None


def test_the_gc_sees_a_handles_references_as_for_asyncios_own(loop):
    # Compiled, tidal's classes have their own GC traverse functions: they
    # must visit what CPython's visits for asyncio's classes, in that order.
    import gc

    ctx = contextvars.copy_context()
    arg = _Arg()
    t = loop.call_at(12.5, noop, arg, context=ctx)
    h = loop.call_soon(noop, arg, context=ctx)
    theirs_t = asyncio.TimerHandle(12.5, noop, (arg,), loop, ctx)
    theirs_t._scheduled = True
    theirs_h = asyncio.Handle(noop, (arg,), loop, ctx)
    for ours, theirs in ((t, theirs_t), (h, theirs_h)):
        a, b = gc.get_referents(ours), gc.get_referents(theirs)
        assert a[-1] is type(ours) and b[-1] is type(theirs)
        assert a[:-1] == b[:-1]
    t.cancel()
    h.cancel()


# A handle that has run and that nothing else holds may be kept by tidal's
# compiled loop for its next call_soon (a freelist).  None of that may show:
# these hold on both loops.


class _Arg:
    pass


def test_a_handle_kept_by_its_caller_is_left_as_it_ran(loop):
    seen = []
    arg = _Arg()
    kept = loop.call_soon(seen.append, arg)
    run_one_turn(loop)
    others = [loop.call_soon(noop, i) for i in range(50)]
    run_one_turn(loop)
    assert seen == [arg]
    assert all(h is not kept for h in others)
    assert kept._callback == seen.append and kept._args == (arg,)
    assert not kept.cancelled()
    assert "append" in repr(kept)


def test_a_weakly_referenced_handle_dies_after_it_ran(loop):
    ref = weakref.ref(loop.call_soon(noop))
    run_one_turn(loop)
    for i in range(50):
        loop.call_soon(noop, i)
    run_one_turn(loop)
    assert ref() is None


def test_a_handle_that_ran_lets_go_of_its_callback_and_arguments(loop):
    arg = _Arg()
    arg_ref = weakref.ref(arg)

    def callback(x):
        pass

    callback_ref = weakref.ref(callback)
    loop.call_soon(callback, arg)
    del arg, callback
    run_one_turn(loop)
    assert arg_ref() is None and callback_ref() is None


def test_handles_the_gc_can_see_are_whole(loop):
    import gc

    for i in range(300):
        loop.call_soon(noop, i)
    run_one_turn(loop)
    handles = [o for o in gc.get_objects() if isinstance(o, asyncio.Handle)]
    for h in handles:
        # An emptied handle would raise AttributeError (its slots unset).
        h.cancelled()
        h._callback, h._args, h._context


# Compiled, a 1-tuple of arguments that call_soon's C entry packed (a done
# callback's `(fut,)`, any call with context=) may be kept, emptied, for the
# next such call once its handle has run and nothing else holds it.


def test_arguments_held_after_their_handle_ran_are_left_as_they_were(loop):
    ctx = contextvars.copy_context()
    args = [_Arg() for _ in range(50)]
    held = [loop.call_soon(noop, a, context=ctx)._args for a in args]
    run_one_turn(loop)
    for i in range(50):
        loop.call_soon(noop, i, context=ctx)
        fut = loop.create_future()
        fut.add_done_callback(noop)
        fut.set_result(i)
    run_one_turn(loop)
    assert all(t == (a,) for t, a in zip(held, args))


def test_a_done_callbacks_future_is_let_go_once_it_ran(loop):
    seen = []
    fut = loop.create_future()
    fut.add_done_callback(lambda f: seen.append(f.result()))
    fut.set_result(1)
    ref = weakref.ref(fut)
    del fut
    run_one_turn(loop)
    assert seen == [1] and ref() is None


def test_argument_tuples_the_gc_can_see_are_whole(loop):
    import gc

    ctx = contextvars.copy_context()
    for i in range(300):
        loop.call_soon(noop, i, context=ctx)
    run_one_turn(loop)
    for o in gc.get_objects():
        if type(o) is tuple and len(o) == 1:
            # An emptied tuple would give no item (a SystemError, or worse).
            repr(o[0])


def test_a_handle_whose_callback_raised_is_reported_whole(loop, loop_errors):
    def boom():
        raise ZeroDivisionError

    loop.call_soon(boom)
    run_one_turn(loop)
    for i in range(50):
        loop.call_soon(noop, i)
    run_one_turn(loop)
    [ctx] = loop_errors
    loop_errors.clear()
    assert ctx["handle"]._callback is boom
    assert "boom" in ctx["message"]


# tidal's compiled loop leaves a call_soon handle out of the cyclic GC while
# it waits in the ready queue.  Whichever way it leaves the queue (run, run
# and raised, cancelled, dropped by close), a cycle through it that its
# caller still holds must be collected as before.


class _Holder:
    def method(self):
        pass

    def boom(self):
        raise ZeroDivisionError


def _collected(probe):
    import gc

    gc.collect()
    return probe() is None


def test_a_dropped_loop_with_callbacks_queued_is_collected(loop_factory):
    # Never run nor closed: the loop, its ready queue and the handles in it
    # (each holding the loop) are one garbage cycle, which the collector
    # frees (asyncio's loop then warns that it was not closed).
    import warnings

    def make() -> weakref.ref[asyncio.AbstractEventLoop]:
        lp = loop_factory()
        lp.call_soon(noop)
        lp.call_soon_threadsafe(noop)
        return weakref.ref(lp)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        probe = make()
        assert _collected(probe)


def test_a_cycle_through_a_handle_that_ran_is_collected(loop):
    holder = _Holder()
    holder.handle = loop.call_soon(holder.method)  # holder -> handle -> method -> holder
    probe = weakref.ref(holder)
    run_one_turn(loop)
    del holder
    assert _collected(probe)


def test_a_cycle_through_a_handle_whose_callback_raised_is_collected(loop, loop_errors):
    holder = _Holder()
    holder.handle = loop.call_soon(holder.boom)
    probe = weakref.ref(holder)
    run_one_turn(loop)
    assert len(loop_errors) == 1
    loop_errors.clear()
    del holder
    assert _collected(probe)


def test_a_cycle_through_a_cancelled_handle_is_collected(loop):
    # Cancelled, the handle lets go of its callback: the cycle goes through
    # its context instead (a context variable holding the holder).
    var: contextvars.ContextVar[_Holder] = contextvars.ContextVar("var")
    holder = _Holder()
    ctx = contextvars.copy_context()
    ctx.run(var.set, holder)
    holder.handle = loop.call_soon(noop, context=ctx)
    holder.handle.cancel()
    probe = weakref.ref(holder)
    run_one_turn(loop)  # the cancelled handle leaves the queue unrun
    del holder, ctx
    assert _collected(probe)


def test_a_cycle_through_a_handle_dropped_by_close_is_collected(loop):
    holder = _Holder()
    holder.handle = loop.call_soon(holder.method)
    probe = weakref.ref(holder)
    loop.close()  # the handle never runs
    del holder
    assert _collected(probe)


def test_a_cycle_through_a_handle_from_another_thread_is_collected(loop):
    import threading

    holder = _Holder()

    def schedule(h):
        h.handle = loop.call_soon_threadsafe(h.method)

    t = threading.Thread(target=schedule, args=(holder,))
    t.start()
    t.join()
    probe = weakref.ref(holder)
    run_one_turn(loop)
    del holder
    assert _collected(probe)


def test_a_handle_subclass_shows_the_gc_its_own_fields_too(loop):
    # A subclass of the loop's handle class (with a __dict__ and a slot of its
    # own) is walked by CPython's generic traverse, which then calls the
    # class's: the GC sees every field, and the class once.
    import gc

    base = type(loop.call_soon(noop))
    loop.call_soon(noop).cancel()

    class Sub(base):  # type: ignore[misc, valid-type]
        __slots__ = ("extra", "__dict__")

    args, extra, attr = (_Arg(),), _Arg(), _Arg()
    h = Sub(noop, args, loop, contextvars.copy_context())
    h.extra = extra
    h.attr = attr
    refs = gc.get_referents(h)
    assert sum(r is Sub for r in refs) == 1
    assert any(r is extra for r in refs)
    assert any(r is args for r in refs) and any(r is loop for r in refs)
    assert any(isinstance(r, dict) and r.get("attr") is attr for r in refs) or any(
        r is attr for r in refs
    )
    # And a cycle through the subclass's own slot is collected.
    holder = _Holder()
    holder.h = Sub(noop, (), loop, None)
    holder.h.extra = holder
    probe = weakref.ref(holder)
    del holder
    assert _collected(probe)


# TimerHandles: freed ones are kept for the next call_later (compiled tidal,
# in the class's deallocator).  A freed timer must die as any object dies
# (its weak references told, its fields let go of), a kept one must never be
# seen again, and a subclass of the class must be freed in full.


def test_a_freed_timers_weak_reference_is_told(loop):
    told = []
    timer = loop.call_later(10, noop)
    ref = weakref.ref(timer, told.append)
    timer.cancel()
    run_one_turn(loop)  # (the heap lets go of it)
    del timer
    assert ref() is None and told == [ref]


def test_a_freed_timer_lets_go_of_its_fields(loop):
    class Callback:
        def __call__(self, x):
            pass

    arg, probe_cb = _Arg(), Callback()
    refs = weakref.ref(arg), weakref.ref(probe_cb)
    timer = loop.call_later(0, probe_cb, arg)
    del arg, probe_cb
    run_one_turn(loop)  # ran: asyncio keeps a timer's callback and args after it ran
    assert all(r() is not None for r in refs)
    del timer
    assert all(r() is None for r in refs)


def test_timers_made_after_others_were_freed_are_new(loop):
    seen = []
    for round_ in range(3):
        timers = [loop.call_later(0, seen.append, (round_, i)) for i in range(300)]
        for t in timers[::3]:
            t.cancel()
        assert not any(t._scheduled is False for t in timers[1::3])
        run_one_turn(loop)
        assert all(t.cancelled() == (i % 3 == 0) for i, t in enumerate(timers))
        del timers, t
    assert seen == [(r, i) for r in range(3) for i in range(300) if i % 3]
    fresh = loop.call_later(5, noop, 1, 2)
    assert not fresh.cancelled() and fresh._args == (1, 2) and fresh._callback is noop
    assert fresh.when() > loop.time()
    fresh.cancel()


def test_the_timer_class_is_not_leaked_or_over_released(loop):
    cls = type(loop.call_later(1, noop))
    loop.call_later(1, noop).cancel()
    run_one_turn(loop)
    before = sys.getrefcount(cls)
    for _ in range(5):
        timers = [loop.call_later(0, noop) for _ in range(400)]
        run_one_turn(loop)
        del timers
    assert sys.getrefcount(cls) == before


def test_a_timer_subclass_is_freed_whole(loop):
    base = type(loop.call_later(1, noop))
    loop.call_later(1, noop).cancel()
    finalized = []

    class Sub(base):  # type: ignore[misc, valid-type]
        __slots__ = ("extra", "__dict__")

        def __del__(self):
            finalized.append(self.extra)

    before = sys.getrefcount(Sub)
    extras = [_Arg() for _ in range(200)]
    refs = [weakref.ref(e) for e in extras]
    timers = [Sub(0.0, noop, (), loop, contextvars.copy_context()) for _ in extras]
    for t, e in zip(timers, extras):
        t.extra = e
        t.attr = _Arg()
    wrefs = [weakref.ref(t) for t in timers]
    del extras, t, e
    del timers
    assert all(r() is None for r in wrefs)
    assert len(finalized) == 200
    del finalized[:]
    assert all(r() is None for r in refs)
    assert sys.getrefcount(Sub) == before


def test_a_cycle_through_a_timer_is_collected(loop):
    holder = _Holder()
    holder.timer = loop.call_later(10, holder.method)
    probe = weakref.ref(holder)
    holder.timer.cancel()
    run_one_turn(loop)
    del holder
    assert _collected(probe)


def test_a_long_chain_of_timers_is_freed(loop):
    # Each timer's args hold the one before: freeing the last frees them all,
    # without exhausting the C stack (the trashcan unrolls the recursion).
    prev = None
    for _ in range(100_000):
        prev = loop.call_later(10, noop, prev)
    probe = weakref.ref(prev)
    del prev
    loop.close()  # the heap lets go of them (cancel() would drop the args)
    assert probe() is None


def test_a_finalizer_given_to_the_timer_class_later_runs(loop):
    cls = type(loop.call_later(1, noop))
    loop.call_later(1, noop).cancel()
    seen = []
    cls.__del__ = lambda self: seen.append(self.when())
    try:
        timer = loop.call_later(0, noop)
        when = timer.when()
        run_one_turn(loop)
        del timer
        assert seen == [when]
    finally:
        del cls.__del__


@pytest.mark.skipif(
    not __import__("tidal").COMPILED, reason="the compiled loop's spare timers (a freelist)"
)
def test_a_thousand_timers_dropped_together_are_reused_whole():
    """tidal only: a batch of a thousand timers, cancelled and dropped, makes
    the next thousand without a fresh allocation the cyclic GC counts (a
    smaller freelist would leave most of them to count, and collect)."""
    import gc

    import tidal

    loop = tidal.new_event_loop()
    ctx = contextvars.copy_context()  # given: no context copied per timer
    was_enabled = gc.isenabled()
    gc.disable()  # (a collection would reset the count read below)
    try:
        timers = [loop.call_later(10, noop, context=ctx) for _ in range(1000)]
        for t in timers:
            t.cancel()
        run_one_turn(loop)  # the heap lets go of them (most of it cancelled)
        del timers, t
        before = gc.get_count()[0]
        again = [loop.call_later(10, noop, context=ctx) for _ in range(1000)]
        counted = gc.get_count()[0] - before
        assert counted < 100, counted  # 1,000 new timers would count ~1,000
        for t in again:
            t.cancel()
    finally:
        if was_enabled:
            gc.enable()
        loop.close()


# asyncio.sleep's timer calls asyncio.futures._set_result_unless_cancelled;
# tidal's compiled loop does that function's two calls itself for asyncio's
# own pending Future.  Everything else must still go through the function.


def _sleep_callback():
    from asyncio import futures

    return futures._set_result_unless_cancelled


def test_a_sleeps_timer_sets_the_result_in_every_case(loop, loop_errors):
    set_unless_cancelled = _sleep_callback()
    pending, cancelled, finished = (loop.create_future() for _ in range(3))
    cancelled.cancel()
    finished.set_result("first")
    for fut in (pending, cancelled, finished):
        loop.call_later(0, set_unless_cancelled, fut, "late")
    loop.run_until_complete(asyncio.sleep(0.01))
    assert pending.result() == "late"
    assert cancelled.cancelled()
    assert finished.result() == "first"
    # The finished one: the function's own InvalidStateError, reported with
    # the function named as the callback.
    [ctx] = loop_errors
    loop_errors.clear()
    assert isinstance(ctx["exception"], asyncio.InvalidStateError)
    assert "_set_result_unless_cancelled" in ctx["message"]
    assert ctx["handle"]._callback is set_unless_cancelled


def test_a_future_subclass_is_set_through_its_own_methods(loop):
    calls = []

    class Recording(asyncio.Future):
        def done(self):
            calls.append("done")
            return super().done()

        def cancelled(self):
            calls.append("cancelled")
            return super().cancelled()

        def set_result(self, result):
            calls.append(("set_result", result))
            super().set_result(result)

    fut = Recording(loop=loop)
    loop.call_later(0, _sleep_callback(), fut, 7)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert fut.result() == 7
    assert calls == ["cancelled", ("set_result", 7)]


def test_a_future_s_own_attributes_are_found_as_the_function_finds_them(loop):
    # The function looks fut.cancelled and fut.set_result up by name: an
    # attribute on the instance (a test double's, say) is what it calls.
    fut = loop.create_future()
    fut.cancelled = lambda: True  # "cancelled": the function leaves it alone
    other = loop.create_future()
    results = []
    other.set_result = results.append
    for f in (fut, other):
        loop.call_later(0, _sleep_callback(), f, 7)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert not fut.done()
    assert results == [7] and not other.done()


def _timer_made_then_context_changed(loop, var, fut):
    """A sleep's timer for `fut`, made while `var` is "timer made", which a
    task sets to "changed since" before the timer runs."""

    async def main():
        var.set("timer made")
        loop.call_later(0, _sleep_callback(), fut, 1)
        var.set("changed since")
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())


def test_a_sleeps_timer_leaves_done_callbacks_their_own_contexts(loop):
    # The wake-up schedules the future's done callbacks, each in the
    # context it was added with, whatever the context the timer was made in.
    var = contextvars.ContextVar("var", default="unset")
    fut = loop.create_future()
    seen = []
    added = contextvars.copy_context()
    added.run(var.set, "added")
    fut.add_done_callback(lambda f: seen.append((f.result(), var.get())), context=added)
    _timer_made_then_context_changed(loop, var, fut)
    assert seen == [(1, "added")]


def test_a_replaced_method_sees_the_context_as_the_timer_was_made(loop):
    # A future with an attribute of its own is set through the function,
    # which runs in the timer's context: a copy of the one the timer was
    # made in, as it was then.
    var = contextvars.ContextVar("var", default="unset")
    fut = loop.create_future()
    seen = []
    fut.set_result = lambda result: seen.append((result, var.get()))
    _timer_made_then_context_changed(loop, var, fut)
    assert seen == [(1, "timer made")]


def test_a_sleep_wakes_its_task_in_the_tasks_context(loop):
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    async def sleeper(value):
        var.set(value)
        result = await asyncio.sleep(0.001, result=value)
        seen.append((result, var.get()))

    async def main():
        await asyncio.gather(sleeper("a"), sleeper("b"))

    loop.run_until_complete(main())
    assert sorted(seen) == [("a", "a"), ("b", "b")]
