"""Photos inherit the scope of their case (issue 17): another street's photo is 404; an upload not
yet attached to a case is readable only by its uploader, a public upload by nobody."""

from __future__ import annotations

from tests.cases_helpers import PNG, category, free_point, upload
from tests.helpers import auth_headers, make_user


def test_photo_of_another_street_is_404(client, session, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYOPS_MEDIA_DIR", str(tmp_path))
    sup, spw = make_user(session, "t_media_yy_sup", ["supervisor"], area_code="310117001")
    yy, ypw = make_user(session, "t_media_yy_op", ["street_operator"], area_code="310117001")
    ss, sspw = make_user(session, "t_media_ss_op", ["street_operator"], area_code="310117103")
    other, opw = make_user(session, "t_media_yy_sup2", ["supervisor"], area_code="310117001")
    cmd, cpw = make_user(session, "t_media_cmd", ["district_commander"], area_code="310117")
    hs, hy, hss, ho, hc = (auth_headers(client, u, p) for u, p in
                           ((sup, spw), (yy, ypw), (ss, sspw), (other, opw), (cmd, cpw)))
    mid = upload(client, hs)
    url = f"/api/v1/media/{mid}"
    # not attached yet: the uploader only
    assert client.get(url, headers=hs).status_code == 200
    for h in (hy, ho, hc, hss):
        r = client.get(url, headers=h)
        assert r.status_code == 404 and r.json()["detail"][0]["loc"] == ["path", "media_id"], r.text
    cat = category(session, "私搭乱建")  # a category no other test reports (no duplicate either way)
    lon, lat, _grid = free_point(session, cat.id, street="310117001", skip=3)
    r = client.post("/api/v1/cases", json={"category_code": cat.code, "lat": lat, "lon": lon, "media": [mid]},
                    headers=hs)
    assert r.status_code == 201, r.text
    # attached: whoever may read the case
    for h in (hs, hy, ho, hc):
        got = client.get(url, headers=h)
        assert got.status_code == 200 and got.content == PNG
    r = client.get(url, headers=hss)  # 佘山镇 may not read a 岳阳街道 case
    assert r.status_code == 404, r.text


def test_public_upload_is_not_readable_by_id_before_it_is_attached(client, session, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYOPS_MEDIA_DIR", str(tmp_path))
    cmd, cpw = make_user(session, "t_media_cmd2", ["district_commander"], area_code="310117")
    r = client.post("/api/v1/public/media", files=[("files", ("p.png", PNG, "image/png"))])
    assert r.status_code == 201, r.text
    url = r.json()["items"][0]["url"]
    assert client.get(url, headers=auth_headers(client, cmd, cpw)).status_code == 404
    assert client.get(url).status_code == 401
