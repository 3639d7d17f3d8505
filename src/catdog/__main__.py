"""`python -m catdog` (and `torchrun -m catdog train`) run the same CLI as `catdog`."""

from catdog.cli import main

main()
