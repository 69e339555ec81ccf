"""HTTP plumbing both servers share (`tailor collect` and the BentoML service): security
headers on every answer and limits on request headers."""
