"""Entry script of batch EMR steps: `spark-submit --py-files fruits_job.zip fruits_cli.py <command> ...`.

`fruits deploy upload` copies this file to s3://<lake>/code/<version>/fruits_cli.py;
it runs any `fruits` command (e.g. fit-pca) from the shipped job package.
"""

import sys

from fruits_cli.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
