"""The framework-free request pipeline behind the BentoML services: filled by the serving issue."""
