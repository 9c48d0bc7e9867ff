"""Under /api/ but outside /api/v1/, errors are JSON too; people still get pages."""

from fetalsite.core.api_errors import server_error


def test_unknown_api_path_outside_v1_is_a_json_404(client):
    response = client.get("/api/v2/patients/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


def test_unknown_page_is_still_a_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_server_error_under_api_is_json(rf):
    response = server_error(rf.get("/api/schema/"))
    assert response.status_code == 500 and b"server_error" in response.content
