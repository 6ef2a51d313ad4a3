"""How the tracking benchmark scores the reference trackers' tracks (benchmarks/tracking.py's RULES): the peers
report a track only from its second detection on, so their whole tracks are scored, with their own rule or with
trapline's for short tracks."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.tracking import PeerTracks, peer_ids
from model_store.core.filters.tracking import TrackConfig

# One sequence, six detections: track 7 (three detections, the first not reported online), track 9 (one confident
# detection, never confirmed by the peer), track 4 (two unsure detections), one detection on no track.
PEER = PeerTracks(reported=[np.array([-1, 0, 0, -1, -1, 1])], tracks=[np.array([7, 7, 7, 9, -1, 4])],
                  confirmed=[np.array([True, True, True, False, False, True])])
SEQ = [{"scores": np.array([0.3, 0.3, 0.3, 0.9, 0.9, 0.3])}]


def test_whole_tracks_keep_the_first_detection_of_a_confirmed_track():
    assert peer_ids(PEER, SEQ, "online", TrackConfig())[0].tolist() == [-1, 0, 0, -1, -1, 1]
    assert peer_ids(PEER, SEQ, "whole", TrackConfig())[0].tolist() == [7, 7, 7, -1, -1, 4]


def test_the_same_rule_confirms_by_trapline_s_rule_whatever_the_peer_said():
    ids = peer_ids(PEER, SEQ, "same", TrackConfig(min_frames=3, confirm_score=0.6))[0]
    # Track 7: three detections; track 9: one detection >= 0.6; track 4: two unsure ones, so not an animal.
    assert ids[4] == -1 and ids[5] == -1
    assert ids[0] == ids[1] == ids[2] >= 0 and ids[3] >= 0 and ids[3] != ids[0]


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown scoring rule 'best'"):
        peer_ids(PEER, SEQ, "best", TrackConfig())
