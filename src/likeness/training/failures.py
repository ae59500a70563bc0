"""Tavus's training failure types and their exact public ``error_message`` strings.

Copied to the letter from the spec (shared/spec/tavus-api.md §3.3); clients match on them.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    "download_link": (
        "There was an issue downloading your video file. Please ensure that the link you "
        "provided is correct and try again"
    ),
    "file_size": (
        "The video file you provided exceeds the maximum file size allowed. Please ensure "
        "that the video is less than 750MB and try again."
    ),
    "video_duration": (
        "There was an issue processing your training video. The video provided does not meet "
        "the minimum duration requirement for training"
    ),
    "video_fps": (
        "There was an issue processing your training video. The video provided does not meet "
        "the minimum frame rate requirement for a training video. Please ensure your training "
        "video has a frame rate of at least 25fps"
    ),
    "face_not_detected": (
        "There was an error processing your training video. Face not detected because it "
        "appeared too small in the frame or it was occluded. Please edit or record a new video "
        "and ensure your face is clearly visible and occupies a larger portion of the frame."
    ),
    "video_damaged": (
        "There was an error processing your training video file. Please check your video "
        "format and make sure it not damaged and could be played correctly."
    ),
    # Ours (Tavus has none): a picture too large for the server's memory budget.
    "video_resolution": (
        "There was an issue processing your training video. Its resolution is too high to "
        "train on this server. Please record at a lower resolution (1080p is best) and try "
        "again."
    ),
    "audio_processing": (
        "There was an error processing the audio in the provided training video file."
    ),
    "consent_phrase_mismatch": (
        "There was an issue processing your training file: Your consent phrase does not match "
        "our requirements. Please follow our specified format closely"
    ),
    "face_or_obstruction_detected": (
        "There was an issue processing your training file: More than one face detected or "
        "obstructions present. Please ensure only your face is visible and clear"
    ),
    "lighting_change_detected": (
        "There was an issue processing your training file: Lighting changes detected. Ensure "
        "your face is evenly lit throughout the video"
    ),
    "background_noise_detected": (
        "There was an issue processing your training file: Background noise or other voices "
        "detected. Please record in a quiet environment with only your voice"
    ),
    "excessive_movement_detected": (
        "There was an issue processing your training file: Excessive movement detected. Please "
        "ensure you are sitting still and centered in the frame"
    ),
    "video_editing_detected": (
        "There was an issue processing your training file: Video appears edited or contains "
        "cuts. Please submit an unedited, continuous video"
    ),
    "hands_obstructing_face": (
        "There was a quality issue with your replica. The user's hand obstructed the face "
        "during recording. Please edit your video or record a new training video and keep "
        "hands away from the face."
    ),
    "second_person_detected": (
        "There was a quality issue with your replica. A second person or face was detected in "
        "the frame. Please edit your video or record a new video with no one else in the "
        "background."
    ),
    "improper_distance": (
        "There was a quality issue with your replica. The user was either too close to or too "
        "far from the camera. Please review our documentation on proper framing and distance "
        "before editing your video or recording a new video."
    ),
    "inconsistent_distance": (
        "There was a quality issue with your replica. The user's distance from the camera "
        "changed during the recording. Please edit or record a new training video and remain "
        "at a consistent distance from the camera for the entire video."
    ),
    "face_turned_away": (
        "There was a quality issue with your replica.  User's face turned away from the "
        "camera. Please edit or record a new video and ensure you are facing directly toward "
        "the camera for the entire duration."
    ),
    "poor_lighting": (
        "There was a quality issue with your replica. The user's face was not clearly visible "
        "due to poor lighting or heavy shadows. Please edit or record a new video with even "
        "lighting on your face, avoiding shadows or dim environments."
    ),
    "quality_issue_detected": (
        "Quality issue detected. For details and assistance, please reach out to Tavus "
        "support via developer-support@tavus.io"
    ),
}

# Our internal names for Tavus's two `video_processing` messages.
PUBLIC_TYPE: dict[str, str] = {
    "face_not_detected": "video_processing",
    "video_damaged": "video_processing",
    "video_resolution": "video_processing",
}

INTERNAL_ERROR = MESSAGES["quality_issue_detected"]


def message_for(failure_type: str) -> str:
    return MESSAGES.get(failure_type, INTERNAL_ERROR)


def public_type(failure_type: str) -> str:
    return PUBLIC_TYPE.get(failure_type, failure_type)
