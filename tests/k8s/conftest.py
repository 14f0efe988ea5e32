"""Renderings of the k8s_app role shared by the tests (each costs one ansible-playbook run)."""
from __future__ import annotations

from pathlib import Path

import pytest

from k8stest_support import (PLACEHOLDER_REDIS_PASSWORD, PLACEHOLDER_REGISTRY_PASSWORD,
                             Rendering, render)


@pytest.fixture(scope="session")
def default_rendering(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    """The role's defaults, with placeholder passwords so the Secrets file is written too."""
    return render(tmp_path_factory.mktemp("default"), {
        "stack_redis_password": PLACEHOLDER_REDIS_PASSWORD,
        "k8s_app_registry_password": PLACEHOLDER_REGISTRY_PASSWORD,
    })


@pytest.fixture(scope="session")
def stack_rendering(tmp_path_factory: pytest.TempPathFactory) -> Rendering:
    """Driven by the Swarm stack's variables, with Sentinel on and non-default values everywhere
    the tests look, so a hard-coded value in a template shows up as a failure."""
    return render(tmp_path_factory.mktemp("stack"), {
        "stack_web_image": "registry.lab.test:5443/swarmlab/counter:2.1.0",
        "stack_web_replicas": 6,
        "stack_web_gunicorn_workers": 5,
        "stack_web_cpu_limit": "0.75",
        "stack_web_memory_limit": "512M",
        "stack_redis_image": "redis:7.2",
        "stack_redis_replicas": 3,
        "stack_redis_password": "p@ss/w:rd%x " + PLACEHOLDER_REDIS_PASSWORD,
        "stack_sentinel_enabled": True,
        "k8s_app_registry_host": "registry.lab.test:5443",
        "k8s_app_registry_username": "deployer",
        "k8s_app_registry_password": PLACEHOLDER_REGISTRY_PASSWORD,
        "k8s_app_namespace": "counter-test",
        "k8s_app_redis_storage_class": "fast-ssd-test",
    })


@pytest.fixture(scope="session")
def renderings(default_rendering: Rendering, stack_rendering: Rendering) -> dict[str, Rendering]:
    return {"default": default_rendering, "stack": stack_rendering}


@pytest.fixture()
def checked_in() -> Path:
    from k8stest_support import CHECKED_IN
    return CHECKED_IN
