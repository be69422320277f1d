"""Getting the service's model assets onto disk and checking the machine it runs on.

The command-line tools in ``tools/`` are thin wrappers over these modules:

* ``catalog``  which files come from which Hugging Face repository, and where they go;
* ``hub``      the HTTP side: metadata (HEAD, ``X-Linked-Size``/``X-Linked-Etag``), resumable
               transfers into ``.part`` files, size and sha256 verification;
* ``sync``     running a plan of downloads and reporting what happened;
* ``progress`` a dependency-free progress bar on stderr;
* ``demo``     generated random-weight assets for machines that cannot download;
* ``doctor``   the checks behind ``tools/setup_environment.py``.
"""
