"""Splitting text at a limit, escaping, and rendering one card for each platform — without a
server: the shapes the adapters send."""

from __future__ import annotations

import pytest

from bot.cards import Card, Table
from bot.chat import discord, slack
from bot.chat.render import chunk, digest, pack, table_text
from tests.chat.samples import block_texts, embed_texts, long_card, png, small_card, squash, tokens, unescape_discord, unescape_slack
from tests.fakes.fake_discord import embed_errors
from tests.fakes.fake_slack import block_errors


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("", 10, []),
        ("short", 10, ["short"]),
        ("one\ntwo\nthree", 7, ["one\ntwo", "three"]),
        ("alpha beta gamma", 10, ["alpha beta", "gamma"]),
        ("abcdefghijkl", 5, ["abcde", "fghij", "kl"]),
        ("a\n\nb", 10, ["a\n\nb"]),
    ],
)
def test_chunk_breaks_at_lines_then_spaces_then_inside_words(text, limit, expected):
    assert chunk(text, limit) == expected


def test_chunk_never_cuts_an_escape_sequence_and_measures_the_escaped_length():
    pieces = chunk("&" * 10, 12, slack.escape)
    assert pieces == ["&amp;&amp;", "&amp;&amp;", "&amp;&amp;", "&amp;&amp;", "&amp;&amp;"]
    assert all(len(piece) <= 12 for piece in pieces)


def test_chunk_loses_nothing_but_the_whitespace_it_split_at():
    text = "\n".join(f"line {i} " + "word " * (i % 40) for i in range(500)) + "\n" + "y" * 7000
    pieces = chunk(text, 300)
    assert all(len(piece) <= 300 for piece in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())


def test_pack_refuses_a_piece_over_the_limit():
    with pytest.raises(ValueError, match="over the limit"):
        pack(["x" * 11], 10)


def test_digest_is_stable_and_sized():
    assert digest("delivery-1", 0) == digest("delivery-1", 0)
    assert digest("delivery-1", 0) != digest("delivery-1", 1)
    assert len(digest("k", 0)) == 25 and len(digest("k", 0, length=8)) == 8


def test_table_text_aligns_columns():
    table = Table(("model", "input"), (("gpt-4o", "$2.50"), ("o1", "$15.00")))
    assert table_text(table).splitlines() == ["model   input", "gpt-4o  $2.50", "o1      $15.00"]


# --- Slack ---------------------------------------------------------------------------------------


def test_slack_card_is_header_section_fields_and_context():
    blocks = slack.card_blocks(small_card())
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": "GPT-4o input price cut 50%", "emoji": True}
    assert [f["text"] for f in blocks[2]["fields"]] == ["*Input*\n$2.50 / Mtok", "*Output*\n$10.00 / Mtok"]


def test_slack_escapes_data_and_sends_mrkdwn_verbatim():
    card = small_card(
        title="<!channel> & co",
        lines=["<!here> <!everyone> <@U024BE7LH> <#C123> <https://evil.invalid|click> @channel a&b"],
        fields=[("<!subteam^S1>", "<@U1>")],
        footer="<!channel>",
    )
    blocks = slack.card_blocks(card)
    assert blocks[0]["text"]["text"] == "&lt;!channel&gt; &amp; co"
    assert blocks[1]["text"]["text"] == (
        "&lt;!here&gt; &lt;!everyone&gt; &lt;@U024BE7LH&gt; &lt;#C123&gt; "
        "&lt;https://evil.invalid|click&gt; @channel a&amp;b"
    )
    texts = block_texts(blocks)
    assert all("<" not in text and ">" not in text for text in texts)
    mrkdwn = [o for b in blocks for o in [b.get("text"), *b.get("fields", []), *b.get("elements", [])] if o and o["type"] == "mrkdwn"]
    assert mrkdwn and all(o["verbatim"] is True for o in mrkdwn)


def test_slack_links_are_the_only_markup_and_cannot_be_broken_out_of():
    card = small_card(links=[("docs <here>", "https://example.invalid/a?x=1&y=<2>|z")])
    link = slack.card_blocks(card)[-2]["text"]["text"]
    assert link == "<https://example.invalid/a?x=1&amp;y=%3C2%3E%7Cz|docs &lt;here&gt;>"


def test_slack_long_card_fits_every_limit_and_loses_nothing():
    card = long_card(image=png())
    steps = slack.render([card], "key-1")
    posts = [s for s in steps if isinstance(s, slack.Post)]
    assert len(posts) > 1
    for post in posts:
        assert block_errors(post.blocks) == []
        assert 1 <= len(post.text) <= 40000
    assert isinstance(steps[-1], slack.Upload) and steps[-1].image == card.image
    text = squash(unescape_slack("\n".join(t for p in posts for t in block_texts(p.blocks))))
    missing = [token for token in tokens(card) if squash(token) not in text]
    assert missing == []


def test_slack_header_longer_than_150_continues_in_a_section():
    blocks = slack.card_blocks(Card(title="word " * 60))
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    assert blocks[1]["type"] == "section"
    assert squash(blocks[0]["text"]["text"] + blocks[1]["text"]["text"]) == squash("word " * 60)


def test_slack_many_cards_share_messages_with_dividers_and_charts_follow_their_card():
    cards = [small_card(title=f"card {i}") for i in range(3)] + [small_card(title="with chart", image=png())]
    steps = slack.render(cards, "k")
    assert [type(s).__name__ for s in steps] == ["Post", "Upload"]
    types = [b["type"] for b in steps[0].blocks]
    assert types.count("divider") == 3 and types[0] == "header" and types[-1] != "divider"
    assert steps[0].text == "card 0 | card 1 | card 2 | with chart"
    assert steps[1].filename.startswith("chart-") and steps[1].filename.endswith(".png")


def test_slack_upload_names_are_stable_per_delivery():
    card = small_card(image=png())
    assert slack.render([card], "k")[1].filename == slack.render([card], "k")[1].filename
    assert slack.render([card], "k")[1].filename != slack.render([card], "other")[1].filename


# --- Discord -------------------------------------------------------------------------------------


def test_discord_card_is_one_embed_with_colour_fields_and_footer():
    embeds = discord.card_embeds(small_card(severity="critical"))
    assert len(embeds) == 1
    embed = embeds[0]
    assert embed["title"] == "GPT-4o input price cut 50%"
    assert embed["color"] == 0xDC2626
    assert [f["name"] for f in embed["fields"]] == ["Input", "Output"]
    assert embed["footer"] == {"text": "Source: genai-prices"}


def test_discord_escapes_markdown_and_mentions():
    assert discord.escape_markdown("*bold* _it_ ~s~ `c` ||spoiler|| [x](y) <@123>") == (
        "\\*bold\\* \\_it\\_ \\~s\\~ \\`c\\` \\|\\|spoiler\\|\\| \\[x\\](y) \\<@123>"
    )
    assert discord.escape_markdown("# heading\n> quote\n- item") == "\\# heading\n\\> quote\n\\- item"


def test_discord_long_card_fits_every_limit_and_loses_nothing():
    card = long_card(image=png())
    messages = discord.render([card])
    assert len(messages) > 1
    for message in messages:
        assert embed_errors(message.embeds) == []
        assert len(message.embeds) <= 10
    with_image = [m for m in messages if m.files]
    assert len(with_image) == 1 and with_image[0].files == [("chart.png", card.image)]
    assert with_image[0].embeds[-1]["image"] == {"url": "attachment://chart.png"}
    text = squash(unescape_discord("\n".join(embed_texts(m.embeds) for m in messages)))
    missing = [token for token in tokens(card) if squash(token) not in text]
    assert missing == []


def test_discord_packs_small_cards_ten_embeds_to_a_message():
    messages = discord.render([small_card(title=f"card {i}") for i in range(23)])
    assert [len(m.embeds) for m in messages] == [10, 10, 3]
    assert all(m.payload()["allowed_mentions"] == {"parse": []} for m in messages)


def test_discord_charts_in_one_message_get_distinct_names():
    messages = discord.render([small_card(image=png()), small_card(image=png())])
    assert [name for name, _ in messages[0].files] == ["chart.png", "chart-2.png"]
    assert [e["image"]["url"] for e in messages[0].embeds] == ["attachment://chart.png", "attachment://chart-2.png"]
    assert messages[0].payload()["attachments"] == [{"id": 0, "filename": "chart.png"}, {"id": 1, "filename": "chart-2.png"}]


def test_discord_nonce_fits_25_characters_and_is_stable():
    assert discord.nonce("a" * 500, 3) == discord.nonce("a" * 500, 3)
    assert len(discord.nonce("a" * 500, 3)) == 25
