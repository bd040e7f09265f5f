"""Audio and RTP: G.711, RTP/RTCP, DTMF, prompts and the player; sans-IO but transport.py.

Public entry points (import them from their modules; this package imports nothing, so a pure
core that uses g711 does not pull in asyncio):

- ``g711``: ``ulaw_encode``, ``ulaw_decode``, ``alaw_encode``, ``alaw_decode``;
- ``rtp``: ``RtpPacket``, ``RtpSender``, ``seq_diff``, ``ts_diff``; ``rtcp``: ``parse_compound``,
  ``SenderReport``, ``ReceiverReport``, ``SourceDescription``, ``Goodbye``, ``ReceptionStats``;
- ``dtmf``: ``detect_tones``, ``TelephoneEventReceiver``, ``dtmf_from_info``;
- ``prompts``: ``load_prompt``, ``prompt_from_text``, ``synthesize``, ``Prompt``, ``PromptError``;
- ``player``: ``Player``, ``Segment``; ``events``: ``DtmfReceived``, ``SegmentStarted``,
  ``SegmentEnded``;
- ``transport``: ``MediaEngine`` (ports and the one send clock) and its ``RtpStream``.
"""
