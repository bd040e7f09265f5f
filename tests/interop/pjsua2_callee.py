"""A callee on PJSIP's stack (the pjsua2-python wheel): answers every INVITE with 180 then 200.

    python pjsua2_callee.py --port 5080 [--tcp]     # 0 = any free port

* one endpoint on 127.0.0.1 (UDP, plus TCP on the same port with --tcp), null audio device, no
registration;
* every incoming call is answered 180 and then 200 with PJSIP's SDP answer; it hangs up when the
caller's
  BYE comes (PJSIP answers the BYE itself);
* prints "READY port=<n>" once listening, and "CALL <id> state=<STATE> ... last_status=<code>" on
each
  call state change, for the test to read; exits cleanly on SIGTERM/SIGINT.
The wheel allows 4 simultaneous calls (pjsua's default max_calls).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from types import FrameType
from typing import Any

import pjsua2 as pj

STOP = False


def _stop(signum: int, frame: FrameType | None) -> None:
    global STOP
    STOP = True


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, account: Any, call_id: int, calls: dict[int, Call]) -> None:
        super().__init__(account, call_id)
        self.calls = calls

    def onCallState(self, prm: Any) -> None:
        ci = self.getInfo()
        print(
            f"CALL {ci.id} state={ci.stateText} remote={ci.remoteUri} "
            f"last_status={ci.lastStatusCode} reason={ci.lastReason}",
            flush=True,
        )
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.calls.pop(ci.id, None)

    def onCallMediaState(self, prm: Any) -> None:
        ci = self.getInfo()
        for media in ci.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO:
                print(f"CALL {ci.id} media status={media.status}", flush=True)

    def onDtmfDigit(self, prm: Any) -> None:
        print(f"CALL {self.getId()} dtmf digit={prm.digit}", flush=True)


class Account(pj.Account):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[int, Call] = {}

    def onIncomingCall(self, prm: Any) -> None:
        call = Call(self, prm.callId, self.calls)
        self.calls[prm.callId] = call
        ringing = pj.CallOpParam()
        ringing.statusCode = 180
        call.answer(ringing)
        ok = pj.CallOpParam()
        ok.statusCode = 200
        call.answer(ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tcp", action="store_true", help="also listen on TCP, same port")
    parser.add_argument("--log-level", type=int, default=3, help="PJSIP log level to stderr (0-6)")
    args = parser.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    # callbacks only from our thread (libHandleEvents below): no PJSIP worker thread calls into
    # Python
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "pjsua2-callee"
    cfg.logConfig.level = args.log_level
    cfg.logConfig.consoleLevel = args.log_level
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.boundAddress = "127.0.0.1"
    tcfg.publicAddress = "127.0.0.1"
    tcfg.port = args.port
    udp = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    port = int(ep.transportGetInfo(udp).localName.rsplit(":", 1)[1])
    if args.tcp:
        tcp_cfg = pj.TransportConfig()
        tcp_cfg.boundAddress = "127.0.0.1"
        tcp_cfg.publicAddress = "127.0.0.1"
        tcp_cfg.port = port
        ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tcp_cfg)
    ep.libStart()
    ep.audDevManager().setNullDev()

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:callee@127.0.0.1:{port}"
    acfg.regConfig.registerOnAdd = False
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
    account = Account()
    account.create(acfg, True)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"READY port={port}", flush=True)
    while not STOP:
        ep.libHandleEvents(20)
    for call in list(account.calls.values()):
        with contextlib.suppress(pj.Error):
            call.hangup(pj.CallOpParam(True))
    for _ in range(10):
        ep.libHandleEvents(20)
    account.shutdown()
    ep.libDestroy()
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
