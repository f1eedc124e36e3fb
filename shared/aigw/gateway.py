"""The gateway's per-environment state: settings, randomness, clocks, and its services.

A ``Gateway`` is built once per execution environment (a Lambda container, the local
server, an Azure worker). Its services (the provider transport, the infrastructure
transport, the authenticator, and later the cache store, control-plane client and log
producer) are built on first use, so a function that never calls a provider never imports
an HTTP client, and are closed together by ``close``. Each shell passes its
``ShellDefaults`` explicitly; tests build one with their own settings, seeded randomness
and fake sleep.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aigw.auth import Authenticator, authenticator_for
from aigw.context import CompletionCallback
from aigw.settings import Settings, ShellDefaults
from aigw.state.store import Store, StoreUnavailable, store_from_settings
from aigw.upstream.transport import Transport, make_transport

if TYPE_CHECKING:
    from aigw.controlplane.sources import ConfigSource, VirtualKeySource
    from aigw.state.breaker import BreakerState
    from aigw.state.response_cache import ResponseCache
    from aigw.state.semantic.index import SemanticIndex
    from aigw.state.sticky import StickyState

T = TypeVar("T")


def _no_control_plane() -> Any:
    # Imported on first use: the sources pull in the config model, ~6 ms of cold start that
    # functions which never resolve a config (health, the $default route) must not pay.
    from aigw.controlplane.sources import NoControlPlane

    return NoControlPlane()


class Service(Generic[T]):
    """A service built on first use and closed (if it has ``close``) with the gateway."""

    __slots__ = ("_build", "_value")

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._build()
        return self._value

    @property
    def built(self) -> T | None:
        return self._value

    async def close(self) -> None:
        value, self._value = self._value, None
        close: Any = getattr(value, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result


def _sticky_state(gw: Gateway) -> StickyState:
    from aigw.state.sticky import StickyState

    return StickyState(lambda: gw.store, gw.clock)


def _breaker_state(gw: Gateway) -> BreakerState:
    from aigw.state.breaker import BreakerState

    return BreakerState(lambda: gw.store, gw.clock)


def _response_cache(gw: Gateway) -> ResponseCache:
    from aigw.state.response_cache import ResponseCache

    return ResponseCache(lambda: gw.store, gw.clock, lambda: gw.semantic_index)


def _semantic_index(settings: Settings, transport: Callable[[], Transport],
                    clock: Callable[[], float]) -> SemanticIndex | None:
    if settings.openai_api_key is None:
        return None
    from aigw.state.semantic.embedder import OpenAIEmbedder
    from aigw.state.semantic.index import SemanticIndex
    from aigw.state.semantic.vectors import MemoryVectorStore, PineconeVectorStore, VectorStore

    timeout_s = settings.semcache_timeout_ms / 1000
    embedder = OpenAIEmbedder(transport, settings.semcache_embeddings_url, settings.openai_api_key,
                              settings.semcache_embedding_model, timeout_s)
    vectors: VectorStore = MemoryVectorStore()
    if settings.semcache_vector_store_url is not None:
        assert settings.vector_store_api_key is not None  # Settings refuses a Pinecone URL without it
        vectors = PineconeVectorStore(transport, settings.semcache_vector_store_url, settings.vector_store_api_key,
                                      timeout_s)
    return SemanticIndex(embedder, vectors, settings.semcache_threshold, clock)


def provider_transport(settings: Settings) -> Transport:
    """Provider calls: SSRF-guarded (a custom host may be anything a client typed)."""
    return make_transport(
        settings.upstream_client,
        trusted_hosts=settings.trusted_custom_hosts,
        pool_size=settings.upstream_pool_size,
        pool_per_host=settings.upstream_pool_per_host,
        connect_timeout_s=settings.upstream_connect_timeout_ms / 1000,
    )


def infrastructure_transport(settings: Settings) -> Transport:
    """Calls to the gateway's own infrastructure (control plane, queue, stores): configured by the
    operator, never by a client, so they may reach private addresses without those becoming
    allowed custom hosts."""
    return make_transport(
        settings.upstream_client,
        trusted_hosts=None,
        pool_size=settings.upstream_pool_size,
        pool_per_host=settings.upstream_pool_per_host,
        connect_timeout_s=settings.upstream_connect_timeout_ms / 1000,
    )


@dataclass(eq=False)
class Gateway:
    settings: Settings
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time
    auth: Authenticator | None = None
    # Where saved configs and virtual keys come from; None: no control plane (built on first use).
    config_source: ConfigSource | None = None
    virtual_key_source: VirtualKeySource | None = None
    # Told about every request once its response is over (the log producer registers here).
    completion_callbacks: list[CompletionCallback] = field(default_factory=list)
    # What the request path builds once per gateway from its services (the call chain).
    memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _transport: Service[Transport] = field(init=False, repr=False)
    _infra_transport: Service[Transport] = field(init=False, repr=False)
    # The cache store; tests may pass their own (an embedded store on their fake clock).
    cache_store: Store | None = None
    _store: Service[Store] = field(init=False, repr=False)
    # What lives in the store, each built on first use (their modules imported only then).
    _sticky: Service[StickyState] = field(init=False, repr=False)
    _breakers: Service[BreakerState] = field(init=False, repr=False)
    _response_cache: Service[ResponseCache] = field(init=False, repr=False)
    _semantic: Service[SemanticIndex | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.auth is None:
            self.auth = authenticator_for(self.settings.auth_mode, self.settings.gateway_api_key_hashes)
        settings = self.settings
        self._transport = Service(lambda: provider_transport(settings))
        self._infra_transport = Service(lambda: infrastructure_transport(settings))
        given = self.cache_store
        self._store = Service(lambda: given if given is not None else store_from_settings(settings, self.clock))
        self._sticky = Service(lambda: _sticky_state(self))
        self._breakers = Service(lambda: _breaker_state(self))
        self._response_cache = Service(lambda: _response_cache(self))
        self._semantic = Service(lambda: _semantic_index(settings, lambda: self.infra_transport, self.clock))

    @property
    def authenticator(self) -> Authenticator:
        assert self.auth is not None
        return self.auth

    @property
    def configs(self) -> ConfigSource:
        if self.config_source is None:
            self.config_source = _no_control_plane()
        return self.config_source

    @property
    def virtual_keys(self) -> VirtualKeySource:
        if self.virtual_key_source is None:
            self.virtual_key_source = _no_control_plane()
        return self.virtual_key_source

    @property
    def transport(self) -> Transport:
        """The provider transport (SSRF-guarded), built on first use."""
        return self._transport.get()

    @property
    def infra_transport(self) -> Transport:
        return self._infra_transport.get()

    @property
    def built_transport(self) -> Transport | None:
        """The provider transport if it exists (health reports on it without building one)."""
        return self._transport.built

    @property
    def sticky(self) -> StickyState:
        """Sticky loadbalance state (L1 in front of the store), built on first use."""
        return self._sticky.get()

    @property
    def breakers(self) -> BreakerState:
        """Circuit-breaker state (shared through the store), built on first use."""
        return self._breakers.get()

    @property
    def response_cache(self) -> ResponseCache:
        """The response cache over the store, built on first use."""
        return self._response_cache.get()

    @property
    def semantic_index(self) -> SemanticIndex | None:
        """The semantic cache's index (embedder and vector store), or None without an embedder key."""
        return self._semantic.get()

    @property
    def store(self) -> Store:
        """The cache store (embedded unless CACHE_STORE names Redis), built on first use."""
        return self._store.get()

    async def start(self) -> None:
        """What a long-lived server does before its first request: start the log pipeline, and
        connect the cache store, so that no request finds it still importing redis-py."""
        if self.settings.log_folder is not None and "logs" not in self.memo:
            from aigw.logs.pipeline import LocalLogPipeline
            from aigw.logs.stores.folder import FolderStore

            pipeline = self.memo["logs"] = LocalLogPipeline(FolderStore(self.settings.log_folder),
                                                            self.settings.service_name)
            pipeline.start()
            self.completion_callbacks.append(pipeline)
        connect = getattr(self.store, "connect", None)
        if connect is not None:
            try:
                await connect()
            except StoreUnavailable:
                pass  # logged by the store; it connects again on later use, the server starts anyway

    async def close(self) -> None:
        pipeline = self.memo.pop("logs", None)
        if pipeline is not None:
            await pipeline.close()  # what is queued is written before the server goes
            self.completion_callbacks.remove(pipeline)
        for service in (self._transport, self._infra_transport, self._store):
            await service.close()

    @classmethod
    def from_env(cls, shell: ShellDefaults, env: Mapping[str, str] = os.environ) -> Gateway:
        return cls(settings=Settings.from_env(env, shell))
