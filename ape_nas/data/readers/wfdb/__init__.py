"""Parts of the ``wfdb`` benchmark; the loader and its documentation are :mod:`ape_nas.data.readers.wfdb_reader`.

``params`` (the loader's parameter schema), ``names`` (channel names → identifiers), ``records`` (reading one
record through the ``wfdb`` package, with size and checksum checks), ``labels`` (class names, annotation labels,
segments → per-sample labels), ``markers`` (marker-channel events and their segments), ``subjects`` (records →
subjects, joined on one timeline).
"""
