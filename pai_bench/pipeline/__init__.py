"""One run, from its configuration to its stored results: ``plan`` (every name resolved, the data
and model facts), ``runner`` (the stages: masks, start state, training, evaluation), ``chain`` (an
iterative baseline's levels), ``dense`` (the shared dense network), ``artifacts`` (stored files
read back validated), ``train`` + ``callbacks`` (the one training loop), ``export``."""
