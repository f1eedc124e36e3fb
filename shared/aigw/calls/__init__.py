"""The call made for one target: ``send`` wrapped in a chain of small steps (``chain``).

``send`` builds the provider request, calls the provider transport and normalises the answer
to the OpenAI shape inside the attempt, so routing decides on what the client would get.
Wrappers around it record each attempt, refuse work past the deadline and resolve virtual
keys; the cache, circuit breaker and hooks of later issues slot in the same way.
"""
