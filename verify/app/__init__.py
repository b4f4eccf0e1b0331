"""The application layer: the report (``report``), its numeric errata and derivation lines (``errata``,
``derivation_numeric``) and the presentation (``render`` for the terminal, ``html``, ``plots``). The only layer of
``verify`` that imports ``derive``'s documents or formats text; nothing below it imports it."""
