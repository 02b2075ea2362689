from tests.conftest import WANG_FANG


async def test_search_wang_fang(api):
    r = await api.http.post("/v1/social-security/participation-searches", json=WANG_FANG, headers=api.headers())
    print(r.status_code, r.text)
    assert r.status_code == 200
