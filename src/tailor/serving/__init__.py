"""The framework-free request pipeline behind the BentoML services (`bentos/`): request ->
online features -> model from the registry -> filters and session re-ranking -> answer
with reasons, degrading to popularity answers instead of failing."""
