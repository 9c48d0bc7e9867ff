"""The study page's poll asks only for what changed (issue 20, cheap requests): the page gives the state it shows
(``data-poll-token``), a poll with that state is a 304 without a body, and after a change only the changed cards
come, with the new state as the ETag."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from classifier import services as classifier_services
from tests.patients.test_views import PARTIAL, card_attributes, classify, model_version, upload  # noqa: F401


def _page_token(client, study) -> tuple[str, str]:
    """The state the study page shows and its ETag, as the page gives them to its script."""
    html = client.get(reverse("study-detail", args=[study.id])).content.decode()
    state = re.search(r'data-poll-token="([^"]*)"', html).group(1)
    return state, unescape(re.search(r'data-poll-etag="([^"]*)"', html).group(1))


def _poll(client, study, token: tuple[str, str]):
    """What the script sends: the last state (``since``) and its ETag (If-None-Match)."""
    state, etag = token
    url = reverse("study-images", args=[study.id])
    return client.get(url, {"since": state}, HTTP_IF_NONE_MATCH=etag, **PARTIAL)


def _token(response) -> tuple[str, str]:
    return response["X-Poll-State"], response["ETag"]


@pytest.fixture
def three_images(study, sonographer, model_version):  # noqa: F811
    images = [upload(study, sonographer, seed=seed) for seed in (1, 2, 3)]
    classify(images[0])
    return images


class TestStudyPoll:
    def test_nothing_changed_is_a_304_without_a_body(self, client, sonographer, study, three_images):
        client.force_login(sonographer)
        token = _page_token(client, study)
        full = client.get(reverse("study-images", args=[study.id]), **PARTIAL)

        response = _poll(client, study, token)

        assert response.status_code == 304
        assert response.content == b""
        assert response["ETag"] == token[1] == full["ETag"] and len(token[1]) == 18  # a quoted 64-bit hash
        assert _token(full) == token
        assert len(card_attributes(full.content.decode(), "data-status")) == 3  # a plain poll: every card

    def test_the_etag_alone_is_enough_for_a_304(self, client, sonographer, study, three_images):
        """A study too long for its state to go in the URL: the script sends only If-None-Match."""
        client.force_login(sonographer)
        _, etag = _page_token(client, study)

        response = client.get(reverse("study-images", args=[study.id]), HTTP_IF_NONE_MATCH=etag, **PARTIAL)

        assert response.status_code == 304

    def test_after_a_change_only_the_changed_card_comes_then_304_again(self, client, sonographer, study, three_images):
        client.force_login(sonographer)
        token = _page_token(client, study)
        classify(three_images[1])  # the worker finishes a second image

        changed = _poll(client, study, token)

        html = changed.content.decode()
        assert changed.status_code == 200
        assert re.findall(r'<article class="card image-card[^"]*" id="image-(\d+)"', html) == [str(three_images[1].id)]
        assert card_attributes(html, "data-status") == ["SUCCEEDED"]
        assert 'data-part="summary"' in html  # the plane summary counts the new prediction
        new_token = _token(changed)
        assert new_token != token
        assert _poll(client, study, new_token).status_code == 304

    def test_a_review_and_a_new_upload_each_change_the_answer(
        self, client, sonographer, clinician, study, three_images
    ):
        client.force_login(sonographer)
        token = _page_token(client, study)
        prediction = three_images[0].jobs.get().prediction
        classifier_services.prediction_review(prediction=prediction, label="fetal_brain", reviewed_by=clinician)
        fourth = upload(study, sonographer, seed=4)

        html = _poll(client, study, token).content.decode()

        shown = re.findall(r'<article class="card image-card[^"]*" id="image-(\d+)"', html)
        assert shown == [str(three_images[0].id), str(fourth.id)]

    def test_a_malformed_or_stale_token_gives_every_card(self, client, sonographer, study, three_images):
        client.force_login(sonographer)

        for state in ["garbage", "COMPLETED-1.1-abc", ""]:
            response = _poll(client, study, (state, '"0000"'))
            assert response.status_code == 200
            assert len(card_attributes(response.content.decode(), "data-status")) == 3, state

    def test_another_clinics_study_is_404_whatever_the_token(self, client, south_sonographer, study, three_images):
        client.force_login(south_sonographer)

        assert _poll(client, study, ("OPEN-1.", '"0000"')).status_code == 404
