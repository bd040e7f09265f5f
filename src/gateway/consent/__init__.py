"""The compliance engine: pure rules that decide whether a number may be called now.

COMPLIANCE.md is the rulebook. ``model`` holds the records and the :class:`Decision`;
``profiles`` the FR, fr-2022 and US rule sets as data; ``zones`` the callee's time zones and
holidays from the number; ``evidence`` the validation of legal-basis records at import;
``policy.decide(inputs, now)`` the decision of section 5, rule by rule, in order (rule ids
``campaign``, ``number``, ``opposition``, ``legal_basis``, ``window``, ``frequency``).
No I/O and no clock: ``now`` is an aware datetime given by the caller. The store
(``gateway.store``) fetches the inputs, reserves the attempt and records the decision.
"""
