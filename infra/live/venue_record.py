"""A live run's venue messages into the recorder's store format, for general use (``backtest --store``).

LiveMarket appends each venue item it reads to ``items`` (a list append on the hot path, nothing more); the
RunRecorder's flusher hands the list to :meth:`VenueRecorder.drain` in its writer thread, where the recorder's
own normalizers (infra.recorder: Upbit books as ``book`` rows, Binance books U/u-synced into ``book`` +
``depth_diff`` rows, connect/disconnect markers) turn them into rows and write one segment per series; at the
end the segments are compacted into the store. The Upbit KRW-USDT book is recorded like any book
(``book/upbit/USDT-KRW``): scenarios.market_data builds the FX from it with the live feed's own rule
(core.market_events ``fx_keep``).

The live adapter hands over Binance books already synced (a full book after each (re)sync, then the diffs it
applied); the recorder's LocalBook re-checks their U/u chain, so a gap shows as a marker here too.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ...core.events import EventBatch
from ...core.market_events import fx_from_books
from ...core.venue import BookDelta, BookSnapshot, Trade
from ..data.store import Store
from ..recorder import BinanceSymbol, SegmentWriter, UpbitSymbol
from ..venues.stream_loop import Marker

FX_CODE, FX_STORE_SYMBOL = "KRW-USDT", "USDT-KRW"


class VenueRecorder:
    def __init__(self, store_root: Path, bases: list[str]) -> None:
        self.root = Path(store_root)
        self.writer = SegmentWriter(self.root, flush_s=1e9, max_rows=1_000_000)  # flushed by drain()
        self.upbit = {f"KRW-{b}": UpbitSymbol(f"KRW-{b}", f"{b}-KRW", self.writer) for b in bases}
        self.upbit[FX_CODE] = UpbitSymbol(FX_CODE, FX_STORE_SYMBOL, self.writer)
        self.binance = {f"{b}USDT": BinanceSymbol(f"{b}USDT", f"{b}-USDT", self.writer) for b in bases}
        self.items: list[tuple[str, Any]] = []  # (venue, item), appended by LiveMarket
        self.lock = threading.Lock()  # drain runs in the flusher's thread; one at a time
        self.handled = 0

    def take(self) -> list[tuple[str, Any]]:
        """On the event loop: the items so far (a new list keeps taking what comes)."""
        taken, self.items = self.items, []
        return taken

    def drain(self, items: list[tuple[str, Any]]) -> int:
        """Normalize and write ``items`` (in the writer thread); returns rows written."""
        with self.lock:
            for venue, item in items:
                self._one(venue, item)
            self.handled += len(items)
            return self.writer.flush()

    def _one(self, venue: str, item: Any) -> None:
        if isinstance(item, Marker):
            recs: list[UpbitSymbol | BinanceSymbol] = [*(self.upbit if venue == "upbit" else self.binance).values()]
            for r in recs:
                if item.kind in ("connected", "reconnect", "resync"):
                    r.on_connect(item.ts_local)
                elif item.kind in ("disconnected", "gave_up"):
                    r.on_disconnect(item.ts_local)
            return
        if venue == "upbit":
            up = self.upbit.get(getattr(item, "symbol", ""))
            if up is not None and isinstance(item, BookSnapshot):
                up.on_book(item)
            elif up is not None and isinstance(item, Trade):
                up.on_trade(item)
            return
        bn = self.binance.get(getattr(item, "symbol", ""))
        if bn is None:
            return
        if isinstance(item, BookSnapshot):
            bn.on_snapshot(item)
        elif isinstance(item, BookDelta):
            bn.on_delta(item)
        elif isinstance(item, Trade):
            bn.on_trade(item)

    def close(self) -> int:
        """The rest, then every segment merged into the store's series (sorted, duplicates dropped)."""
        self.drain(self.take())
        with self.lock:
            return self.writer.compact(Store(self.root))


def fx_from_book_table(table: pa.Table) -> EventBatch:
    """The FX rows the live feed handed its routes, rebuilt from a recorded ``book/upbit/USDT-KRW`` series with
    the feed's own rule (core.market_events.fx_from_books: the best levels' mid, kept when it changed or every
    FX_REFRESH_NS)."""
    from .market import FX_REFRESH_NS

    if table.num_rows == 0:
        return fx_from_books(*(np.zeros(0, np.int64),) * 2, *(np.zeros(0),) * 2, FX_REFRESH_NS)
    tl = table.column("ts_local").to_numpy()
    top = (table.column("level").to_numpy() == 0)
    side = table.column("side").to_numpy()
    books, first = np.unique(tl, return_index=True)  # one book per receive time (the recorder keeps them apart)
    bid, ask = np.full(books.shape[0], np.nan), np.full(books.shape[0], np.nan)
    px = table.column("price").to_numpy()
    at = np.searchsorted(books, tl)
    bid[at[top & (side == 0)]] = px[top & (side == 0)]
    ask[at[top & (side == 1)]] = px[top & (side == 1)]
    return fx_from_books(books, table.column("ts").to_numpy()[first], bid, ask, FX_REFRESH_NS)
