"""Where the lab lives. Every notebook's Colab badge and setup cell point here."""

REPO_URL = "https://github.com/attnflex-lab/attnflex-lab"
COLAB_URL = "https://colab.research.google.com/github/attnflex-lab/attnflex-lab/blob/main"
