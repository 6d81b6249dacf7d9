"""URI parsing, revision checks and redaction: unit and property tests (no servers)."""
from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlproj.errors import SourceError
from mlproj.source.redact import redact, strip_credentials
from mlproj.source.uri import (
    check_revision,
    is_full_sha,
    normalize_subdirectory,
    parse,
    relative_url,
    split_subdirectory,
)


@pytest.mark.parametrize('uri,kind,url,scheme,host,sub', [
    ('https://github.com/org/repo.git', 'remote', 'https://github.com/org/repo.git', 'https', 'github.com', ''),
    ('https://github.com/org/repo#sub/dir', 'remote', 'https://github.com/org/repo', 'https', 'github.com', 'sub/dir'),
    ('"https://github.com/org/repo#a/b/c"', 'remote', 'https://github.com/org/repo', 'https', 'github.com', 'a/b/c'),
    ('http://127.0.0.1:8080/p.git#.', 'remote', 'http://127.0.0.1:8080/p.git', 'http', '127.0.0.1:8080', ''),
    ('git://127.0.0.1:9418/p.git#', 'remote', 'git://127.0.0.1:9418/p.git', 'git', '127.0.0.1:9418', ''),
    ('ssh://git@host:2222/srv/p.git#x', 'remote', 'ssh://git@host:2222/srv/p.git', 'ssh', 'host:2222', 'x'),
    ('git+ssh://git@host/p.git', 'remote', 'ssh://git@host/p.git', 'ssh', 'host', ''),
    ('git@github.com:org/repo.git#sub', 'remote', 'git@github.com:org/repo.git', 'ssh', 'github.com', 'sub'),
    ('host.example:repo.git', 'remote', 'host.example:repo.git', 'ssh', 'host.example', ''),
    ('https://[::1]:8443/p.git', 'remote', 'https://[::1]:8443/p.git', 'https', '[::1]:8443', ''),
])
def test_remote_forms(uri, kind, url, scheme, host, sub, tmp_path):
    p = parse(uri, tmp_path)
    assert (p.kind, p.url, p.scheme, p.host, p.subdirectory) == (kind, url, scheme, host, sub)


def test_local_forms(tmp_path):
    (tmp_path / 'proj' / 'sub').mkdir(parents=True)
    assert parse('proj#sub', tmp_path).url == str(tmp_path / 'proj')
    assert parse('proj#sub', tmp_path).subdirectory == 'sub'
    assert parse(f'file://{tmp_path}/proj#sub', tmp_path).url == f'{tmp_path}/proj'
    assert parse(f'file://localhost{tmp_path}/proj', tmp_path).scheme == 'file'
    assert parse('', tmp_path).url == str(tmp_path / '.')
    assert parse('#sub', tmp_path / 'proj').subdirectory == 'sub'
    # a local path wins over scp-like syntax when it exists
    (tmp_path / 'a:b').mkdir()
    assert parse('a:b', tmp_path).kind == 'local'


def test_credentials_are_split_from_the_url(tmp_path):
    p = parse('https://alice:s3cret-token@example.com/org/repo.git#x', tmp_path)
    assert p.url == 'https://example.com/org/repo.git'
    assert p.display == 'https://example.com/org/repo.git'
    assert (p.username, p.password) == ('alice', 's3cret-token')
    p = parse('https://ghp_tokenonly@example.com/r.git', tmp_path)
    assert (p.username, p.password, p.display) == ('ghp_tokenonly', None, 'https://example.com/r.git')
    p = parse('ssh://git:pw@example.com/r.git', tmp_path)
    assert p.url == 'ssh://git@example.com/r.git' and p.password == 'pw'


@pytest.mark.parametrize('uri,message', [
    ('ext::sh -c touch% /tmp/pwned', 'transport helper ext::'),
    ('fd::17', 'transport helper fd::'),
    ('ftp://example.com/r.git', "unsupported URI scheme 'ftp'"),
    ('s3://bucket/r', "unsupported URI scheme 's3'"),
    ('https://example.com/r.git\n#x', 'control characters'),
    ('https://exa\x00mple.com/r', 'control characters'),
    ('ssh://-oProxyCommand=touch%20x/r.git', 'looks like an option'),
    ('-oProxyCommand=x:r.git', 'looks like an option'),
    ('git@-oProxyCommand=x:r.git', 'looks like an option'),
    ('host:-u', 'invalid repository path'),
    ('https://example.com', 'no repository path'),
    ('https://example.com/r?x=1', 'query string'),
    ('https://exa mple.com/r', 'invalid host'),
    ('file://otherhost/srv/r.git', 'remote host'),
    ('git://u:p@host/r.git', 'cannot carry credentials'),
    ('does/not/exist', 'project directory does not exist'),
    ('./missing', 'project directory does not exist'),
    ('https://example.com/r#../../etc', 'escapes the repository'),
    ('https://example.com/r#/etc', 'must be relative'),
    ('https://example.com/r#~/x', 'must be relative'),
    ('https://example.com/r#a/../../b', 'escapes the repository'),
    ('https://example.com/r#..\\..\\x', 'escapes the repository'),
    ('https://example.com/r#.git/hooks', 'Git metadata'),
    ('https://example.com/r#a\tb', 'control characters'),
])
def test_hostile_uris_are_rejected(uri, message, tmp_path):
    with pytest.raises(SourceError) as e:
        parse(uri, tmp_path)
    assert message in str(e.value)
    assert '\n' not in str(e.value)


@pytest.mark.parametrize('rev', ['main', 'v1.2', 'HEAD~2', 'v1.2^{commit}', 'abc1234', 'feature/x', 'HEAD^2', 'a' * 40])
def test_good_revisions(rev):
    assert check_revision(rev) == rev


@pytest.mark.parametrize('rev,message', [
    ('--output=/tmp/x', 'looks like an option'),
    ('-x', 'looks like an option'),
    ('main\n--upload-pack=x', 'whitespace or control'),
    ('a b', 'whitespace or control'),
    ('main..feature', 'range'),
    ('x' * 300, 'longer than'),
])
def test_hostile_revisions(rev, message):
    with pytest.raises(SourceError) as e:
        check_revision(rev)
    assert message in str(e.value)


def test_empty_revision_means_default():
    assert check_revision(None) is None
    assert check_revision('  ') is None


def test_full_sha():
    assert is_full_sha('0' * 40) and is_full_sha('a' * 64)
    assert not is_full_sha('abc1234') and not is_full_sha('g' * 40) and not is_full_sha(None)


@pytest.mark.parametrize('sub,expected', [
    ('', ''), ('.', ''), ('./a//b/', 'a/b'), ('a/./b', 'a/b'), ('v1.2/.ci', 'v1.2/.ci'),
])
def test_subdirectory_normalisation(sub, expected):
    assert normalize_subdirectory(sub) == expected


def test_split_at_first_hash():
    assert split_subdirectory("'https://h/r.git#a/b'") == ('https://h/r.git', 'a/b')
    assert split_subdirectory('https://h/r.git#a#b') == ('https://h/r.git', 'a#b')


@pytest.mark.parametrize('base,rel,expected', [
    ('https://h/org/proj.git', '../lib.git', 'https://h/org/lib.git'),
    ('https://h/proj.git', '../lib.git', 'https://h/lib.git'),
    ('git@h:org/proj.git', '../lib.git', 'git@h:org/lib.git'),
    ('root@h:/srv/proj.git', '../lib.git', 'root@h:/srv/lib.git'),
    ('/srv/proj.git', '../lib.git', '/srv/lib.git'),
    ('ssh://u@h:22/srv/proj.git/', './sub', 'ssh://u@h:22/srv/proj.git/sub'),
])
def test_relative_submodule_urls(base, rel, expected):
    assert relative_url(base, rel) == expected


def test_relative_submodule_url_cannot_climb_past_the_host():
    with pytest.raises(SourceError):
        relative_url('https://h/proj.git', '../../x.git')


def test_strip_and_redact():
    assert strip_credentials('https://u:tok@h/r') == 'https://h/r'
    assert strip_credentials('https://tok@h/r') == 'https://h/r'
    assert strip_credentials('ssh://git@h/r') == 'ssh://git@h/r'
    assert strip_credentials('ssh://git:pw@h/r') == 'ssh://h/r'
    text = 'failed for https://u:abcd1234@h/r and token abcd1234 and xyz'
    out = redact(text, ['abcd1234'])
    assert 'abcd1234' not in out and 'https://h/r' in out


_url_chars = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters='@/:#?'),
                     min_size=4, max_size=20)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(user=_url_chars, secret=_url_chars, path=st.from_regex(r'[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,3}', fullmatch=True),
       sub=st.from_regex(r'([a-z0-9._-]{1,6}/){0,3}[a-z0-9_-]{1,6}', fullmatch=True))
def test_parse_never_exposes_the_password(user, secret, path, sub):
    uri = f'https://{user}:{secret}@example.com/{path}#{sub}'
    p = parse(uri, '/')
    assert secret not in p.url and secret not in p.display
    assert p.password == unquote(secret)  # percent-encoding is decoded, as in any URL
    assert p.subdirectory == normalize_subdirectory(sub)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=40))
def test_subdirectory_never_escapes(sub):
    try:
        out = normalize_subdirectory(sub)
    except SourceError:
        return
    assert not out.startswith('/')
    assert '..' not in out.split('/')
    assert all(ord(c) >= 32 for c in out)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=60))
def test_parse_either_classifies_or_raises_source_error(text):
    try:
        p = parse(text, '/nonexistent-cwd-for-tests')
    except SourceError as e:
        assert '\n' not in str(e)
        return
    assert p.kind in ('local', 'remote')
    if p.kind == 'remote':
        assert p.scheme in ('https', 'http', 'ssh', 'git')
        assert not p.host.startswith('-')
