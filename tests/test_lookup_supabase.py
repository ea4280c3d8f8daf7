"""GET /api/contacts/by-phone against rows inserted with plain SQL (docs/contract.md §3)."""

import pytest

from helpers import DEMO_ANSWER, OTHER_WORKSPACE, WORKSPACE

URL = "/api/contacts/by-phone"


def lookup(client, auth, phone, workspace=WORKSPACE):
    return client.get(URL, query_string={"phone": phone, "workspace_id": workspace}, headers=auth)


@pytest.fixture()
def rows(db):
    """Rows written directly with SQL, the way a Supabase project holds them."""
    db.execute("INSERT INTO workspaces (id, name) VALUES (%s, 'A'), (%s, 'B')", (WORKSPACE, OTHER_WORKSPACE))
    db.execute(
        """INSERT INTO contacts (id, workspace_id, phone, name, kapso_name, lead_status, lead_score,
                                 tags, created_at)
           VALUES ('10000000-0000-4000-8000-000000000001', %s, '+6281234567890', 'Budi', 'Budi WA',
                   'hot', 80, '{vip,jakarta}', '2026-01-02 03:04:05.678912+00'),
                  ('10000000-0000-4000-8000-000000000002', %s, '+6281200000002', '', 'Profile Only',
                   'new', 0, '{}', '2026-01-03 00:00:00+07'),
                  ('10000000-0000-4000-8000-000000000003', %s, '+6281200000003', NULL, NULL,
                   'cold', 5, DEFAULT, '2026-01-04 00:00:00+00'),
                  ('10000000-0000-4000-8000-000000000004', %s, '+6281234567890', 'Other tenant', NULL,
                   'won', 99, '{secret}', '2026-01-05 00:00:00+00')""",
        (WORKSPACE, WORKSPACE, WORKSPACE, OTHER_WORKSPACE),
    )
    db.execute(
        """INSERT INTO conversations (id, workspace_id, contact_id, status, unread_count, last_message_at)
           VALUES ('20000000-0000-4000-8000-000000000001', %s, '10000000-0000-4000-8000-000000000001',
                   'open', 2, '2026-01-20 09:10:11.12+00'),
                  ('20000000-0000-4000-8000-000000000003', %s, '10000000-0000-4000-8000-000000000003',
                   'open', 0, NULL)""",
        (WORKSPACE, WORKSPACE),
    )
    for i in range(7):  # the last two share a timestamp: insertion order breaks the tie
        stamp = f"2026-01-{10 + min(i, 5):02d} 00:00:00+00"
        db.execute("INSERT INTO contact_notes (workspace_id, contact_id, content, created_at) "
                   "VALUES (%s, '10000000-0000-4000-8000-000000000001', %s, %s)", (WORKSPACE, f"note {i}", stamp))
    contents = ["halo", "untuk bukan masuk"] * 6 + ["mau ke UK", "visa?"]
    for i, content in enumerate(contents):
        db.execute("INSERT INTO messages (workspace_id, conversation_id, direction, content, created_at) "
                   "VALUES (%s, '20000000-0000-4000-8000-000000000001', 'inbound', %s, %s)",
                   (WORKSPACE, content, f"2026-01-20 09:00:{i:02d}+00"))


def test_found_answer_follows_spec(client, auth, rows):
    response = lookup(client, auth, "081234567890")
    assert response.status_code == 200
    assert response.get_json() == {
        "found": True,
        "contact": {"name": "Budi", "lead_status": "hot", "lead_score": 80, "tags": ["vip", "jakarta"],
                    "is_returning": True, "first_contact_date": "2026-01-02T03:04:05.679Z"},
        "notes": ["note 6", "note 5", "note 4", "note 3", "note 2"],
        "conversation_summary": "Discussed: Visa, UK",
        "last_interaction": "2026-01-20T09:10:11.120Z",
    }
    assert list(response.get_json()) == ["found", "contact", "notes", "conversation_summary", "last_interaction"]


def test_only_ten_newest_messages_count(client, auth, db, rows):
    db.execute("UPDATE messages SET content = 'kuliah di Australia' WHERE id = 1")
    assert lookup(client, auth, "+6281234567890").get_json()["conversation_summary"] == "Discussed: Visa, UK"
    db.execute("UPDATE messages SET content = 'kuliah di Australia' WHERE id = 5")
    assert lookup(client, auth, "+6281234567890").get_json()["conversation_summary"] == "Discussed: Visa, UK, Australia"


def test_name_falls_back_to_whatsapp_profile(client, auth, rows):
    body = lookup(client, auth, "+62 812-0000-0002").get_json()
    assert body["contact"]["name"] == "Profile Only"
    assert body["contact"]["first_contact_date"] == "2026-01-02T17:00:00.000Z"
    assert body["contact"]["tags"] == [] and body["notes"] == []
    assert body["conversation_summary"] is None and body["last_interaction"] is None
    assert body["contact"]["is_returning"] is False


def test_conversation_without_messages(client, auth, rows):
    body = lookup(client, auth, "6281200000003").get_json()
    assert body["contact"]["name"] is None
    assert body["contact"]["is_returning"] is False
    assert body["conversation_summary"] is None


def test_other_workspace_is_never_returned(client, auth, rows):
    mine = lookup(client, auth, "+6281234567890").get_json()
    theirs = lookup(client, auth, "+6281234567890", OTHER_WORKSPACE).get_json()
    assert mine["contact"]["name"] == "Budi" and theirs["contact"]["name"] == "Other tenant"
    assert lookup(client, auth, "6281200000002", OTHER_WORKSPACE).get_json() == {"found": False, "context": None}


def test_not_found(client, auth, rows):
    response = lookup(client, auth, "+6289999999999")
    assert response.status_code == 200
    assert response.get_json() == {"found": False, "context": None}


def test_unknown_workspace_is_not_found(client, auth, rows):
    body = lookup(client, auth, "+6281234567890", "99999999-9999-4999-8999-999999999999").get_json()
    assert body == {"found": False, "context": None}


@pytest.mark.parametrize("phone", ["+6281234567890", "6281234567890", "081234567890", "+62 812-3456-7890"])
def test_demo_contact_in_every_form(client, auth, demo, phone):
    assert lookup(client, auth, phone).get_json() == DEMO_ANSWER


def test_workspace_id_is_case_insensitive(client, auth, demo):
    assert lookup(client, auth, "081234567890", WORKSPACE.upper()).get_json()["found"] is True
