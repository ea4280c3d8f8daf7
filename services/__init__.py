"""Logic and I/O of Kontak: phone numbers, stores, clients, shaping, timing."""
