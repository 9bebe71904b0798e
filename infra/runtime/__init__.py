"""Code that runs in AWS on behalf of the infrastructure itself (custom resources), not the product."""
