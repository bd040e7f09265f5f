"""Audio and RTP: G.711, RTP/RTCP, DTMF, prompts and the player; sans-IO but transport.py."""
