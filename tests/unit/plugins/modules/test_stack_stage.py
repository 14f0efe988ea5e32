# Copyright (c) swarmlab maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""stack_stage on compose files as the stack role writes them. Whether Swarm takes a staged file
as meant (the kept services untouched, the full deploy afterwards a no-op) is checked on the lab:
the `redis-renewal` drill in the short set of the Molecule `default` scenario
(tests/drills/test_drills_short.py)."""

from __future__ import annotations

import yaml

import pytest

from ansible_collections.swarmlab.cluster.plugins.modules.stack_stage import StageError, run


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.check_mode = check_mode
        self.params = {'stack': 'swarmlab', 'services': [], 'dest': None}
        self.params.update(params)


def compose(cert='c1', boot='b1', password='p1', image='redis:7', web='web:1'):
    def redis(name):
        return {'image': image, 'command': ['server'], 'volumes': ['%s-data:/data' % name, {'type': 'tmpfs', 'target': '/run/redis'}],
                'networks': ['backend'], 'configs': [{'source': 'redis_boot', 'target': '/boot.sh', 'mode': 0o555}],
                'secrets': [{'source': 'redis_tls_cert', 'target': 'redis_tls_cert', 'mode': 0o444}, 'redis_password']}
    return {
        'version': '3.8',
        'x-common': {'a': 1},
        'services': {'web': {'image': web, 'networks': ['backend'], 'secrets': ['redis_password']},
                     'redis-master': redis('redis-master'), 'redis-sentinel-1': redis('redis-sentinel-1')},
        'networks': {'backend': {'driver': 'overlay', 'internal': True}},
        'volumes': {'redis-master-data': None, 'redis-sentinel-1-data': None},
        'secrets': {'redis_tls_cert': {'file': './secrets/cert', 'name': 'swarmlab_redis_tls_cert_' + cert},
                    'redis_password': {'file': './secrets/redis_password', 'name': 'swarmlab_redis_password_' + password}},
        'configs': {'redis_boot': {'file': './redis-boot.sh', 'name': 'swarmlab_redis_boot_' + boot}},
    }


@pytest.fixture
def files(tmp_path):
    (tmp_path / 'stack').mkdir()
    (tmp_path / 'stack.deployed').mkdir()

    def write(new, old=None):
        (tmp_path / 'stack' / 'docker-compose.swarm.yml').write_text(yaml.safe_dump(new))
        if old is not None:
            (tmp_path / 'stack.deployed' / 'docker-compose.swarm.yml').write_text(yaml.safe_dump(old))
        return {'compose': str(tmp_path / 'stack' / 'docker-compose.swarm.yml'),
                'deployed': str(tmp_path / 'stack.deployed' / 'docker-compose.swarm.yml'),
                'staged': str(tmp_path / 'stack' / 'docker-compose.staged.yml')}
    return write


def test_same_files_differ_in_nothing(files):
    paths = files(compose(), compose())
    result = run(FakeModule(compose=paths['compose'], deployed=paths['deployed']))
    assert result['deployed_exists'] and not result['changed']
    assert result['differ'] == [] and result['added'] == [] and result['removed'] == [] and result['objects_changed'] == []


def test_a_new_secret_behind_the_same_definition_is_a_change_of_the_services_that_mount_it(files):
    paths = files(compose(cert='c2'), compose())
    result = run(FakeModule(compose=paths['compose'], deployed=paths['deployed']))
    assert result['differ'] == ['redis-master', 'redis-sentinel-1']  # web does not mount the certificate
    assert result['objects_changed'] == ['redis_tls_cert']


def test_a_new_password_is_reported_by_its_key(files):
    paths = files(compose(password='p2'), compose())
    result = run(FakeModule(compose=paths['compose'], deployed=paths['deployed']))
    assert result['differ'] == ['redis-master', 'redis-sentinel-1', 'web']
    assert result['objects_changed'] == ['redis_password']


def test_added_and_removed_services(files):
    new, old = compose(), compose()
    new['services']['redis-replica-1'] = new['services'].pop('redis-sentinel-1')
    paths = files(new, old)
    result = run(FakeModule(compose=paths['compose'], deployed=paths['deployed']))
    assert result['added'] == ['redis-replica-1'] and result['removed'] == ['redis-sentinel-1']


def test_first_deploy_has_nothing_deployed_to_compare_with(files):
    paths = files(compose())
    result = run(FakeModule(compose=paths['compose'], deployed=paths['deployed'], dest=paths['staged']))
    assert not result['deployed_exists'] and result['added'] == ['redis-master', 'redis-sentinel-1', 'web']
    assert result['staged'] == [] and not result['changed']


def test_staged_file_moves_only_the_named_service(files):
    new, old = compose(cert='c2', boot='b2', image='redis:7.2', web='web:2'), compose()
    paths = files(new, old)
    result = run(FakeModule(compose=paths['compose'], deployed=paths['deployed'], services=['redis-sentinel-1'], dest=paths['staged']))
    assert result['changed'] and result['staged'] == ['redis-sentinel-1']
    staged = yaml.safe_load(open(paths['staged'], encoding='utf-8'))
    assert staged['services']['redis-sentinel-1'] == new['services']['redis-sentinel-1']
    # The others keep what they run: their image, and their secrets and configs under the old names.
    assert staged['services']['web']['image'] == 'web:1'
    master = staged['services']['redis-master']
    assert master['image'] == 'redis:7'
    refs = {item['target']: staged[kind][item['source']] for kind in ('secrets', 'configs') for item in master[kind]}
    assert refs == {'redis_tls_cert': {'external': True, 'name': 'swarmlab_redis_tls_cert_c1'},
                    'redis_password': {'external': True, 'name': 'swarmlab_redis_password_p1'},
                    '/boot.sh': {'external': True, 'name': 'swarmlab_redis_boot_b1'}}
    # Long syntax keeps its options; short syntax becomes long, mounted where it was.
    assert master['secrets'] == [{'source': 'deployed__redis_tls_cert', 'target': 'redis_tls_cert', 'mode': 0o444},
                                 {'source': 'deployed__redis_password', 'target': 'redis_password'}]
    # The new objects are there for the moved service (relative files, as in the compose file).
    assert staged['secrets']['redis_tls_cert'] == new['secrets']['redis_tls_cert']
    assert staged['configs']['redis_boot'] == new['configs']['redis_boot']
    assert staged['version'] == '3.8' and 'x-common' not in staged
    assert staged['networks'] == new['networks'] and set(staged['volumes']) == set(new['volumes'])


def test_staging_again_changes_nothing_and_check_mode_writes_nothing(files, tmp_path):
    paths = files(compose(cert='c2'), compose())
    params = {'compose': paths['compose'], 'deployed': paths['deployed'], 'services': ['redis-master'], 'dest': paths['staged']}
    assert run(FakeModule(**params))['changed']
    assert not run(FakeModule(**params))['changed']
    params['services'] = ['redis-master', 'redis-sentinel-1']
    before = open(paths['staged'], encoding='utf-8').read()
    assert run(FakeModule(check_mode=True, **params))['changed']
    assert open(paths['staged'], encoding='utf-8').read() == before


def test_every_service_staged_new_is_the_new_file(files):
    new = compose(cert='c2', web='web:2')
    paths = files(new, compose())
    run(FakeModule(compose=paths['compose'], deployed=paths['deployed'], services=list(new['services']), dest=paths['staged']))
    staged = yaml.safe_load(open(paths['staged'], encoding='utf-8'))
    assert staged['services'] == new['services'] and staged['secrets'] == new['secrets']


def test_bad_input_is_refused_before_anything_is_written(files, tmp_path):
    paths = files(compose(), compose())
    with pytest.raises(StageError, match='not services of the compose file: nope'):
        run(FakeModule(compose=paths['compose'], deployed=paths['deployed'], services=['nope'], dest=paths['staged']))
    with pytest.raises(StageError, match='must be in the directory of compose'):
        run(FakeModule(compose=paths['compose'], deployed=paths['deployed'], dest=str(tmp_path / 'elsewhere.yml')))
    (tmp_path / 'stack' / 'docker-compose.swarm.yml').write_text('just: text\n')
    with pytest.raises(StageError, match='not a compose file'):
        run(FakeModule(compose=paths['compose'], deployed=paths['deployed']))
    assert not (tmp_path / 'stack' / 'docker-compose.staged.yml').exists()
