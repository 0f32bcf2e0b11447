"""Host shell of `purejaxppo bench`: measurements, suite, hardware, peers, FLOP count,
report and the subcommand. Imports the core and `purejaxppo.run`; nothing imports it
except `purejaxppo.cli`.
"""
