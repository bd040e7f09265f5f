"""Digest authentication: RFC 2617, RFC 7616 and RFC 8760 examples, sessions, parsing quirks."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.sip.auth import (
    ALGORITHMS,
    Challenge,
    DigestError,
    DigestSession,
    authorization,
    check_authorization,
    choose_challenge,
    parse_auth_params,
)
from gateway.sip.errors import ParseError

# RFC 7616 section 3.9.1: the same inputs for both algorithms.
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def params_of(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest"
    return parse_auth_params(rest)


def test_rfc2617_section_3_5_example() -> None:
    challenge = Challenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        nc=1,
        cnonce="0a4f113b",
    )
    params = params_of(value)
    assert params == {
        "username": "Mufasa",
        "realm": "testrealm@host.com",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html",
        "response": "6629fae49393a05397450978507c4ef1",
        "algorithm": "MD5",
        "cnonce": "0a4f113b",
        "nc": "00000001",
        "qop": "auth",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
    }
    # qop, nc and algorithm are tokens, never quoted (RFC 7616 section 3.4).
    assert "qop=auth," in value
    assert "nc=00000001" in value
    assert "algorithm=MD5" in value


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_example(algorithm: str, response: str) -> None:
    challenge = Challenge.parse(rfc7616_challenge(algorithm))
    assert challenge.algorithm == algorithm
    assert challenge.qop == ("auth", "auth-int")
    value = authorization(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        nc=1,
        cnonce=RFC7616_CNONCE,
    )
    params = params_of(value)
    assert params["response"] == response
    assert params["opaque"] == RFC7616_OPAQUE
    assert params["qop"] == "auth"
    assert params["algorithm"] == algorithm
    assert check_authorization(
        value, method="GET", password="Circle of Life", realm="http-auth@example.org"
    )


def test_rfc8760_first_supported_challenge_wins() -> None:
    values = [
        'Digest realm="r", nonce="n0", algorithm=SHA-512-384',  # unknown: skipped
        'Basic realm="r"',
        rfc7616_challenge("SHA-256"),
        rfc7616_challenge("MD5"),
    ]
    chosen = choose_challenge(values)
    assert chosen is not None
    assert chosen.algorithm == "SHA-256"
    chosen = choose_challenge(values[:2] + values[3:])
    assert chosen is not None
    assert chosen.algorithm == "MD5"


def test_choose_challenge_none_when_nothing_supported() -> None:
    assert choose_challenge([]) is None
    assert choose_challenge(['Basic realm="x"', 'Digest realm="r", nonce="n", qop="weird"']) is None


def test_sha512_256_round_trip() -> None:
    # Debian 12's OpenSSL provides SHA-512/256; a machine without it must fail here, not skip.
    assert "SHA-512-256" in ALGORITHMS
    challenge = Challenge.parse('Digest realm="r", nonce="n", qop=auth, algorithm=sha-512-256')
    assert challenge.algorithm == "SHA-512-256"
    value = authorization(
        challenge, method="INVITE", uri="sip:a@b", username="u", password="p", nc=1, cnonce="c"
    )
    assert len(params_of(value)["response"]) == 64
    assert check_authorization(value, method="INVITE", password="p", realm="r")


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess"])
def test_sess_algorithms_verify(algorithm: str) -> None:
    challenge = Challenge.parse(f'Digest realm="r", nonce="n", qop="auth", algorithm={algorithm}')
    value = authorization(
        challenge, method="BYE", uri="sip:a@b", username="u", password="p", nc=3, cnonce="cn"
    )
    assert check_authorization(value, method="BYE", password="p", realm="r")
    assert not check_authorization(value, method="BYE", password="q", realm="r")


def test_no_qop_is_rfc2069_style() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n"')
    assert challenge.algorithm == "MD5"
    assert challenge.qop == ()
    value = authorization(
        challenge, method="INVITE", uri="sip:x@y", username="u", password="p", nc=1, cnonce="c"
    )
    params = params_of(value)
    assert "qop" not in params
    assert "nc" not in params
    assert "cnonce" not in params
    assert "opaque" not in params
    assert check_authorization(value, method="INVITE", password="p", realm="r")


def test_auth_int_only_when_auth_absent_hashes_the_body() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", qop="auth-int"')
    body = b"v=0\r\n"
    value = authorization(
        challenge,
        method="INVITE",
        uri="sip:x@y",
        username="u",
        password="p",
        nc=1,
        cnonce="c",
        body=body,
    )
    assert params_of(value)["qop"] == "auth-int"
    assert check_authorization(value, method="INVITE", password="p", realm="r", body=body)
    assert not check_authorization(value, method="INVITE", password="p", realm="r", body=b"")


def test_nc_is_eight_hex_digits_and_bounded() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", qop=auth')

    def nc_of(nc: int) -> str:
        value = authorization(
            challenge, method="BYE", uri="sip:a", username="u", password="p", nc=nc, cnonce="c"
        )
        return params_of(value)["nc"]

    assert nc_of(255) == "000000ff"
    assert nc_of(0xFFFFFFFF) == "ffffffff"
    with pytest.raises(DigestError):
        nc_of(0)
    with pytest.raises(DigestError):
        nc_of(2**32)


def test_quotes_in_username_are_escaped() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", qop=auth')
    value = authorization(
        challenge, method="BYE", uri="sip:a", username='a"b\\c', password="p", nc=1, cnonce="c"
    )
    assert 'username="a\\"b\\\\c"' in value
    assert params_of(value)["username"] == 'a"b\\c'
    assert check_authorization(value, method="BYE", password="p", realm="r")


# --- parsing quirks ---------------------------------------------------------------------------


def test_parse_spaces_case_commas_in_quotes_and_unknown_params() -> None:
    challenge = Challenge.parse(
        'DIGEST  REALM = "sip.example.com" ,NONCE="a,b\\"c" ,, qop="auth-int,auth",'
        ' algorithm=md5 , Stale=TRUE, domain="sip:a.example.com sip:b.example.com",'
        " x-unknown=whatever, charset=UTF-8"
    )
    assert challenge == Challenge(
        scheme="Digest",
        realm="sip.example.com",
        nonce='a,b"c',
        opaque=None,
        algorithm="MD5",
        qop=("auth-int", "auth"),
        stale=True,
        domain="sip:a.example.com sip:b.example.com",
    )


def test_parse_unquoted_values_and_quoted_algorithm() -> None:
    challenge = Challenge.parse(
        'Digest realm=asterisk,nonce=1a2b3c,algorithm="SHA-256",stale=false'
    )
    assert challenge.realm == "asterisk"
    assert challenge.nonce == "1a2b3c"
    assert challenge.algorithm == "SHA-256"
    assert challenge.stale is False


def test_parse_kamailio_style_challenge() -> None:
    challenge = Challenge.parse(
        'Digest realm="10.0.0.1", nonce="Z2Vhc2VkZWZhdWx0:c3a1", qop="auth", algorithm=MD5'
    )
    assert challenge.supported
    assert challenge.nonce == "Z2Vhc2VkZWZhdWx0:c3a1"


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ('Basic realm="x"', "scheme"),
        ("", "scheme"),
        ('Digest nonce="n"', "realm"),
        ('Digest realm="r"', "nonce"),
        ('Digest realm="r, nonce="n"', "after auth-param 'realm'"),
        ('Digest realm="r", nonce="n', "unterminated"),
        ('Digest realm "r", nonce="n"', "="),
        ('Digest realm="r" nonce="n"', "','"),
        ('Digest realm="r", nonce=', "empty"),
        ('Digest realm="r", realm="s", nonce="n"', "twice"),
        ('Digest =x, realm="r", nonce="n"', "name"),
    ],
)
def test_parse_errors_say_what_is_wrong(value: str, what: str) -> None:
    with pytest.raises(ParseError, match=what) as info:
        Challenge.parse(value)
    assert info.value.status == 400
    assert info.value.reason == "Bad Request"


def test_unknown_algorithm_parses_but_is_not_supported() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-1024')
    assert challenge.algorithm == "SHA-1024"
    assert not challenge.supported
    with pytest.raises(DigestError):
        authorization(
            challenge, method="BYE", uri="sip:a", username="u", password="p", nc=1, cnonce="c"
        )


# --- server side ------------------------------------------------------------------------------


def test_check_authorization_rejections() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n1", qop=auth')
    value = authorization(
        challenge, method="INVITE", uri="sip:a", username="u", password="p", nc=1, cnonce="c"
    )

    def check(value: str = value, method: str = "INVITE", realm: str = "r", **kw: str) -> bool:
        return check_authorization(
            value,
            method=method,
            password="p",
            realm=realm,
            username=kw.get("username"),
            nonce_ok=lambda n: n == kw.get("nonce", n),
        )

    assert check()
    assert check(username="u")
    assert check(nonce="n1")
    assert not check(username="v")
    assert not check(nonce="n2")
    assert not check(method="BYE")
    assert not check(realm="other")
    assert not check("Basic dTpw")
    assert not check('Digest username="u", realm="r"')
    assert not check('Digest username="u')
    assert not check(value.replace("qop=auth", "qop=auth-conf"))
    assert not check(value.replace("algorithm=MD5", "algorithm=SHA-1024"))


# --- sessions ---------------------------------------------------------------------------------

KAMAILIO_1 = 'Digest realm="trunk.example", nonce="nonce-1", qop="auth", algorithm=MD5'
KAMAILIO_2 = 'Digest realm="trunk.example", nonce="nonce-2", qop="auth", algorithm=MD5'
KAMAILIO_2_STALE = KAMAILIO_2 + ", stale=true"


def test_session_answers_and_verifies() -> None:
    rng = random.Random(1)
    session = DigestSession("alice", "secret")
    value = session.answer(Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:bob@x", rng=rng)
    assert value is not None
    params = params_of(value)
    assert params["nc"] == "00000001"
    assert len(params["cnonce"]) == 24
    assert check_authorization(
        value, method="INVITE", password="secret", realm="trunk.example", username="alice"
    )


def test_session_cnonce_comes_from_rng_reproducibly() -> None:
    a = DigestSession("alice", "secret").answer(
        Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=random.Random(7)
    )
    b = DigestSession("alice", "secret").answer(
        Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=random.Random(7)
    )
    assert a == b


def test_nonce_count_increments_per_nonce() -> None:
    rng = random.Random(2)
    session = DigestSession("alice", "secret")
    first = Challenge.parse(KAMAILIO_1)
    second = Challenge.parse(KAMAILIO_2)
    ncs = []
    for challenge in (first, first, second, first):
        value = session.answer(challenge, method="INVITE", uri="sip:b", rng=rng)
        assert value is not None
        ncs.append(params_of(value)["nc"])
    assert ncs == ["00000001", "00000002", "00000001", "00000003"]


def test_cnonce_is_fresh_for_each_request() -> None:
    rng = random.Random(3)
    session = DigestSession("alice", "secret")
    challenge = Challenge.parse(KAMAILIO_1)
    a = session.answer(challenge, method="INVITE", uri="sip:b", rng=rng)
    b = session.answer(challenge, method="INVITE", uri="sip:b", rng=rng)
    assert a is not None
    assert b is not None
    assert params_of(a)["cnonce"] != params_of(b)["cnonce"]


def test_sess_algorithm_keeps_the_first_cnonce_for_a_nonce() -> None:
    rng = random.Random(3)
    session = DigestSession("alice", "secret")
    challenge = Challenge.parse('Digest realm="r", nonce="n", qop=auth, algorithm=MD5-sess')
    a = session.answer(challenge, method="INVITE", uri="sip:b", rng=rng)
    (_, b), *_ = session.reuse("BYE", "sip:b", rng)
    assert a is not None
    assert params_of(a)["cnonce"] == params_of(b)["cnonce"]
    assert check_authorization(b, method="BYE", password="secret", realm="r")


def test_wrong_password_gives_up_after_one_retry() -> None:
    """RFC 3261 section 22.2: a second challenge for the same realm means bad credentials."""
    rng = random.Random(4)
    session = DigestSession("alice", "wrong")
    sent = session.answer(Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=rng)
    assert sent is not None
    # The server rejects them and challenges again with a new nonce, not stale.
    again = session.answer(
        Challenge.parse(KAMAILIO_2), method="INVITE", uri="sip:b", rng=rng, rejected=[sent]
    )
    assert again is None


def test_stale_nonce_is_retried_with_the_new_nonce() -> None:
    rng = random.Random(5)
    session = DigestSession("alice", "secret")
    sent = session.answer(Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=rng)
    assert sent is not None
    retry = session.answer(
        Challenge.parse(KAMAILIO_2_STALE), method="INVITE", uri="sip:b", rng=rng, rejected=[sent]
    )
    assert retry is not None
    assert params_of(retry)["nonce"] == "nonce-2"
    assert params_of(retry)["nc"] == "00000001"


def test_same_nonce_challenged_again_gives_up() -> None:
    rng = random.Random(6)
    session = DigestSession("alice", "wrong")
    challenge = Challenge.parse(KAMAILIO_1)
    session.answer(challenge, method="INVITE", uri="sip:b", rng=rng)
    (_, reused), *_ = session.reuse("INVITE", "sip:c", rng)
    assert params_of(reused)["nc"] == "00000002"
    assert (
        session.answer(challenge, method="INVITE", uri="sip:c", rng=rng, rejected=[reused]) is None
    )


def test_rejected_preemptive_credentials_get_one_fresh_try() -> None:
    """A server that forgot its nonce rejects reused credentials: answer its new challenge once."""
    rng = random.Random(7)
    session = DigestSession("alice", "secret")
    session.answer(Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=rng)
    (_, reused), *_ = session.reuse("INVITE", "sip:c", rng)
    fresh = session.answer(
        Challenge.parse(KAMAILIO_2), method="INVITE", uri="sip:c", rng=rng, rejected=[reused]
    )
    assert fresh is not None
    assert (
        session.answer(
            Challenge.parse('Digest realm="trunk.example", nonce="nonce-3", qop=auth'),
            method="INVITE",
            uri="sip:c",
            rng=rng,
            rejected=[fresh],
        )
        is None
    )


def test_credentials_for_another_realm_do_not_count() -> None:
    rng = random.Random(8)
    session = DigestSession("alice", "secret")
    other = authorization(
        Challenge.parse('Digest realm="proxy", nonce="p", qop=auth'),
        method="INVITE",
        uri="sip:b",
        username="alice",
        password="secret",
        nc=1,
        cnonce="c",
    )
    value = session.answer(
        Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=rng, rejected=[other]
    )
    assert value is not None


def test_unsupported_challenge_is_not_answered() -> None:
    session = DigestSession("alice", "secret")
    challenge = Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-1024')
    assert session.answer(challenge, method="INVITE", uri="sip:b", rng=random.Random(0)) is None


def test_reuse_preauthenticates_with_incremented_nc() -> None:
    rng = random.Random(9)
    session = DigestSession("alice", "secret")
    assert session.reuse("BYE", "sip:b", rng) == []
    session.answer(Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=rng)
    session.answer(
        Challenge.parse('Digest realm="proxy", nonce="p", qop=auth'),
        method="INVITE",
        uri="sip:b",
        rng=rng,
        proxy=True,
        call_id="call-1",
    )
    headers = session.reuse("BYE", "sip:b;transport=tcp", rng, call_id="call-1")
    assert [name for name, _ in headers] == ["Authorization", "Proxy-Authorization"]
    www = params_of(headers[0][1])
    assert www["nc"] == "00000002"
    assert www["uri"] == "sip:b;transport=tcp"
    assert check_authorization(
        headers[0][1], method="BYE", password="secret", realm="trunk.example"
    )
    assert check_authorization(headers[1][1], method="BYE", password="secret", realm="proxy")
    [(_, again)] = session.reuse("INVITE", "sip:b", rng, call_id="call-2")
    assert params_of(again)["nc"] == "00000003"
    session.forget()
    assert session.reuse("BYE", "sip:b", rng, call_id="call-1") == []


def test_proxy_credentials_stay_within_their_call_id() -> None:
    """RFC 3261 section 22.3: a 407's credentials MUST NOT be cached across dialogs."""
    rng = random.Random(13)
    session = DigestSession("alice", "secret")
    proxy_challenge = Challenge.parse('Digest realm="proxy", nonce="p", qop=auth')
    session.answer(proxy_challenge, method="INVITE", uri="sip:b", rng=rng, proxy=True)
    assert session.reuse("BYE", "sip:b", rng, call_id="anything") == []  # no Call-ID: no cache
    session.answer(
        proxy_challenge, method="INVITE", uri="sip:b", rng=rng, proxy=True, call_id="call-1"
    )
    assert session.reuse("INVITE", "sip:c", rng) == []
    assert session.reuse("INVITE", "sip:c", rng, call_id="call-2") == []
    [(name, value)] = session.reuse("BYE", "sip:b", rng, call_id="call-1")
    assert name == "Proxy-Authorization"
    assert check_authorization(value, method="BYE", password="secret", realm="proxy")
    session.forget("call-1")
    assert session.reuse("BYE", "sip:b", rng, call_id="call-1") == []


def test_proxy_cache_is_bounded_when_calls_are_never_forgotten() -> None:
    rng = random.Random(14)
    session = DigestSession("alice", "secret")
    challenge = Challenge.parse('Digest realm="proxy", nonce="p", qop=auth')
    for k in range(1100):
        session.answer(
            challenge, method="INVITE", uri="sip:b", rng=rng, proxy=True, call_id=f"c{k}"
        )
    assert session.reuse("BYE", "sip:b", rng, call_id="c0") == []
    assert len(session.reuse("BYE", "sip:b", rng, call_id="c1099")) == 1


def test_a_lone_rejected_value_is_not_read_as_characters() -> None:
    rng = random.Random(15)
    session = DigestSession("alice", "wrong")
    sent = session.answer(Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=rng)
    assert sent is not None
    again = session.answer(
        Challenge.parse(KAMAILIO_2),
        method="INVITE",
        uri="sip:b",
        rng=rng,
        rejected=sent,  # a str is a Sequence[str] too: the session must not iterate it
    )
    assert again is None


def test_newer_challenge_replaces_the_cached_one_for_its_realm() -> None:
    rng = random.Random(10)
    session = DigestSession("alice", "secret")
    session.answer(Challenge.parse(KAMAILIO_1), method="INVITE", uri="sip:b", rng=rng)
    session.answer(Challenge.parse(KAMAILIO_2_STALE), method="INVITE", uri="sip:b", rng=rng)
    [(_, value)] = session.reuse("BYE", "sip:b", rng)
    assert params_of(value)["nonce"] == "nonce-2"
    assert params_of(value)["nc"] == "00000002"


def test_session_forgets_old_nonce_counts() -> None:
    rng = random.Random(11)
    session = DigestSession("alice", "secret")
    for k in range(200):
        challenge = Challenge.parse(f'Digest realm="r", nonce="n{k}", qop=auth')
        session.answer(challenge, method="INVITE", uri="sip:b", rng=rng)
    assert len(session._nc) <= 64


def test_loopback_trunk_flow_with_server_issued_nonces() -> None:
    """A UAS that challenges every request, as Kamailio does, and tracks the nonces it issued."""
    issued: set[str] = set()
    rng = random.Random(12)

    def challenge(k: int, stale: bool = False) -> Challenge:
        nonce = f"srv-{k}"
        issued.add(nonce)
        return Challenge("Digest", "trunk", nonce, opaque="op", qop=("auth",), stale=stale)

    def server_accepts(value: str, method: str) -> bool:
        return check_authorization(
            value, method=method, password="pw", realm="trunk", nonce_ok=issued.__contains__
        )

    session = DigestSession("gw", "pw")
    first = session.answer(challenge(1), method="INVITE", uri="sip:100@trunk", rng=rng)
    assert first is not None
    assert server_accepts(first, "INVITE")
    [(_, bye)] = session.reuse("BYE", "sip:100@trunk", rng)
    assert server_accepts(bye, "BYE")
    # The server expires nonce 1 and says so: the next pre-authenticated INVITE is retried.
    issued.discard("srv-1")
    [(_, invite)] = session.reuse("INVITE", "sip:101@trunk", rng)
    assert not server_accepts(invite, "INVITE")
    retry = session.answer(
        challenge(2, stale=True), method="INVITE", uri="sip:101@trunk", rng=rng, rejected=[invite]
    )
    assert retry is not None
    assert server_accepts(retry, "INVITE")


@given(st.text())
def test_parse_arbitrary_text_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        Challenge.parse("Digest " + text)
    choose_challenge([text, "Digest " + text])
    check_authorization("Digest " + text, method="INVITE", password="p", realm="r")


# Printable ASCII without control characters: what a quoted-string can carry (RFC 3261 25.1).
QDTEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30)


@given(
    st.tuples(QDTEXT, QDTEXT, QDTEXT, QDTEXT),
    st.sampled_from(ALGORITHMS),
    st.sampled_from([(), ("auth",), ("auth-int",), ("auth", "auth-int")]),
)
def test_any_quoted_values_round_trip_through_the_server_check(
    values: tuple[str, str, str, str], algorithm: str, qop: tuple[str, ...]
) -> None:
    realm, nonce, username, password = values
    assume(qop or not algorithm.endswith("-sess"))  # -sess needs qop: tested apart
    challenge = Challenge("Digest", realm, nonce, opaque=nonce, algorithm=algorithm, qop=qop)
    value = authorization(
        challenge,
        method="INVITE",
        uri="sip:a@b",
        username=username,
        password=password,
        nc=1,
        cnonce="abc",
        body=b"v=0",
    )
    assert params_of(value)["realm"] == realm
    assert check_authorization(
        value, method="INVITE", password=password, realm=realm, username=username, body=b"v=0"
    )


def test_sess_without_qop_cannot_be_answered() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", algorithm=MD5-sess')
    assert not challenge.supported
    assert choose_challenge(['Digest realm="r", nonce="n", algorithm=MD5-sess']) is None
    with pytest.raises(DigestError):
        authorization(
            challenge, method="BYE", uri="sip:a", username="u", password="p", nc=1, cnonce="c"
        )
