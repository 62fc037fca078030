"""`python -m services.scoring`: decisions from feature vectors through Triton."""

from fraudshared.service import main
from services.scoring.bootstrap import bootstrap

if __name__ == "__main__":
    main("scoring", bootstrap)
