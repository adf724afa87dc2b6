"""The fakes' wallet and system status: a flag per coin to suspend deposits / withdrawals, and maintenance.

Set in tests (``fake.wallet.suspend("BTC", deposit=True)``) or at run time:
``POST /fake/wallet {"suspend": {"BTC": ["deposit"]}, "maintenance": true}`` (``"suspend": {"BTC": []}`` lifts
it). Both fakes render the same flags in their venue's shape: Binance ``/sapi/v1/capital/config/getall`` and
``/sapi/v1/system/status`` (brief §B9), Upbit ``/v1/status/wallet`` (§A10). Maintenance is Binance-only (Upbit
has no system status endpoint in the brief).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from aiohttp import web

from .common import fmt8, reply

WAYS = ("deposit", "withdraw")
KST = timezone(timedelta(hours=9))


@dataclass
class WalletFlags:
    maintenance: bool = False
    suspended: dict[str, set[str]] = field(default_factory=dict)  # coin -> {"deposit", "withdraw"}

    def suspend(self, coin: str, *, deposit: bool = False, withdraw: bool = False) -> None:
        """Set a coin's suspensions (False lifts one)."""
        ways = {w for w, on in zip(WAYS, (deposit, withdraw), strict=True) if on}
        if ways:
            self.suspended[coin] = ways
        else:
            self.suspended.pop(coin, None)

    def ok(self, coin: str, way: str) -> bool:
        return way not in self.suspended.get(coin, set())

    def update(self, values: Any) -> None:
        """From ``POST /fake/wallet`` JSON; anything malformed raises ValueError before any change."""
        if not isinstance(values, dict) or set(values) - {"suspend", "maintenance"}:
            raise ValueError('expected {"suspend": {"COIN": ["deposit"|"withdraw", ...]}, "maintenance": bool}')
        sus, maint = values.get("suspend", {}), values.get("maintenance", self.maintenance)
        if not isinstance(maint, bool) or not isinstance(sus, dict) or not all(
                isinstance(c, str) and isinstance(w, list) and set(w) <= set(WAYS) for c, w in sus.items()):
            raise ValueError("suspend: {coin: [deposit|withdraw]}, maintenance: true|false")
        self.maintenance = maint
        for coin, ways in sus.items():
            self.suspend(coin, deposit="deposit" in ways, withdraw="withdraw" in ways)

    def as_dict(self) -> dict[str, Any]:
        return {"maintenance": self.maintenance, "suspend": {c: sorted(w) for c, w in self.suspended.items()}}


WALLET_KEY: web.AppKey[WalletFlags] = web.AppKey("wallet", WalletFlags)


async def wallet_get(request: web.Request) -> web.Response:
    return reply(request.app[WALLET_KEY].as_dict())


async def wallet_post(request: web.Request) -> web.Response:
    try:
        request.app[WALLET_KEY].update(await request.json())
    except ValueError as e:
        return reply({"error": str(e)}, status=400)
    return reply(request.app[WALLET_KEY].as_dict())


def binance_coins(flags: WalletFlags, coins: list[str], free: dict[str, Decimal],
                  locked: dict[str, Decimal]) -> list[dict[str, Any]]:
    """``/sapi/v1/capital/config/getall``: one network per coin (named after it), as Binance shapes it."""
    out = []
    for coin in coins:
        dep, wd = flags.ok(coin, "deposit"), flags.ok(coin, "withdraw")
        net = {"network": coin, "coin": coin, "withdrawIntegerMultiple": "0.00000001", "isDefault": True,
               "depositEnable": dep, "withdrawEnable": wd,
               "depositDesc": "" if dep else "Wallet Maintenance, Deposit Suspended",
               "withdrawDesc": "" if wd else "Wallet Maintenance, Withdrawal Suspended", "specialTips": "",
               "name": coin, "resetAddressStatus": False, "addressRegex": "", "memoRegex": "",
               "withdrawFee": "0.0001", "withdrawMin": "0.001", "withdrawMax": "9999999999.99999999",
               "minConfirm": 1, "unLockConfirm": 0, "sameAddress": False, "estimatedArrivalTime": 5,
               "busy": False}
        out.append({"coin": coin, "depositAllEnable": dep, "withdrawAllEnable": wd, "name": coin,
                    "free": fmt8(free.get(coin, Decimal(0))), "locked": fmt8(locked.get(coin, Decimal(0))),
                    "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0",
                    "isLegalMoney": False, "trading": True, "networkList": [net]})
    return out


def binance_system(flags: WalletFlags) -> dict[str, Any]:
    return {"status": 1, "msg": "system_maintenance"} if flags.maintenance else {"status": 0, "msg": "normal"}


def upbit_wallet(flags: WalletFlags, coins: list[str], now_ms: int) -> list[dict[str, Any]]:
    """``/v1/status/wallet``: one network per coin; the suspension picks the wallet_state."""
    states = {(True, True): "working", (False, True): "withdraw_only", (True, False): "deposit_only",
              (False, False): "paused"}
    updated = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(KST).isoformat(timespec="seconds")
    return [{"currency": c, "wallet_state": states[(flags.ok(c, "deposit"), flags.ok(c, "withdraw"))],
             "block_state": "normal", "block_height": 900_000, "block_updated_at": updated,
             "block_elapsed_minutes": 0, "net_type": c, "network_name": c} for c in coins]
