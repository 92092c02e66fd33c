import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fixtures/ holds helper modules next to the data

# the property tests draw the same examples on every run (a clean clone has no example database):
# a failure is a defect to mend, not a draw that CI may or may not make; a case found once is
# kept as an @example
settings.register_profile("seeded", derandomize=True)
settings.load_profile("seeded")

FIXTURES = ROOT / "fixtures"


@pytest.fixture()
def runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="session")
def grid_gpkg(tmp_path_factory):
    from fixtures.grid import write_grid

    path = tmp_path_factory.mktemp("grid") / "grid.gpkg"
    write_grid(path)
    return path


@pytest.fixture(scope="session")
def grid_net(grid_gpkg):
    from mapdiff.network import load_network

    return load_network(grid_gpkg)


@pytest.fixture(scope="session")
def grid_edges():
    from fixtures.grid import grid_edges

    return grid_edges()


@pytest.fixture(scope="session")
def oakland_gpkg(tmp_path_factory):
    from mapdiff.osm import build_map

    path = tmp_path_factory.mktemp("oak") / "oakland.gpkg"
    build_map(FIXTURES / "West-Oakland.osm.bz2", path)
    return path


@pytest.fixture(scope="session")
def postgres_cluster():
    """A real PostgreSQL server for the session (Debian's package; .ci/run installs it)."""
    from fixtures.postgres import Cluster

    skip_without_postgis()
    cluster = Cluster().start()
    yield cluster
    cluster.stop()


def skip_without_postgis():
    """Skip the test where this machine has no PostgreSQL server with PostGIS."""
    from fixtures.postgres import bin_dir

    found = bin_dir()
    if found is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql (.ci/run installs them)")
    major = found.split("/")[4]
    if not Path(f"/usr/share/postgresql/{major}/extension/postgis.control").exists():
        pytest.skip(f"PostGIS for PostgreSQL {major} not installed (.ci/run installs postgresql-{major}-postgis-3)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def store_url(request, tmp_path):
    """A fresh, empty task store URL on each backend: the same tests run on both."""
    if request.param == "sqlite":
        return str(tmp_path / "tasks.sqlite")
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(f"t_{abs(hash(request.node.nodeid)) % 10**9}")


@pytest.fixture(scope="session")
def helsinki_gpkg(tmp_path_factory):
    from mapdiff.osm import build_map

    path = tmp_path_factory.mktemp("hel") / "helsinki.gpkg"
    build_map(FIXTURES / "helsinki.osm.pbf", path)
    return path


@pytest.fixture(scope="session")
def sim_dir(helsinki_gpkg, tmp_path_factory):
    from click.testing import CliRunner

    from mapdiff_cli.main import cli

    out = tmp_path_factory.mktemp("sim") / "sim"
    res = CliRunner().invoke(cli, ["simulate", "--map", str(helsinki_gpkg), "-o", str(out), "--vehicles", "6",
                                   "--seed", "3", "-q"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (SeaweedFS) for the session; tests reach it through
    :func:`s3_env`."""
    from fixtures.s3 import S3Server

    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture()
def s3(s3_server, monkeypatch, request):
    """The server's credentials in the environment and a fresh bucket for the test; yields its
    ``s3://bucket`` URL."""
    import s3fs

    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"t{abs(hash(request.node.nodeid)) % 10**9}"
    s3_server.make_bucket(bucket)
    yield f"s3://{bucket}"
    s3fs.S3FileSystem.clear_instance_cache()
