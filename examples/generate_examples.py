"""Write the synthetic example inputs: python examples/generate_examples.py [--out DIR].

Stdlib only. Every text comes from the templates and word lists below and a fixed seed; nothing
is copied from a data set, and a rerun writes byte-identical files (default DIR: this folder).
"""

import argparse
import csv
import json
import random
import re
from pathlib import Path

SEED = 20240517
N_TICKETS, N_CSV_TICKETS, N_DOCUMENTS = 600, 120, 60

# --- Support tickets -------------------------------------------------------------------
# One core sentence per line, "label | template"; {slots} are filled by ticket_context().
TICKETS = """
billing | I was charged {amount} twice on {date} for my {plan} plan.
billing | My invoice for {month} shows {amount}, which is more than my plan should cost.
billing | Why is there an extra charge of {amount} on my card from {date}?
billing | The billing page says my payment failed, but my bank shows {amount} was taken.
billing | Can you explain the {amount} service fee on the invoice for order {order}?
refund_request | I'd like a refund for order {order}, the {product} arrived broken.
refund_request | Please refund the {amount} for the {product} I sent back on {date}.
refund_request | I returned the {product} {days} days ago and still haven't got my money back.
refund_request | Can I get my money back for order {order}? The {product} is still unopened.
refund_request | I want a refund of {amount}, the {product} stopped working after a week.
shipping_delay | My order {order} was supposed to arrive on {date} and still hasn't shown up.
shipping_delay | The tracking for order {order} hasn't updated in {days} days.
shipping_delay | Where is my {product}? You said it shipped {days} days ago.
shipping_delay | I ordered the {product} on {date} and it still says processing, when will it ship?
shipping_delay | My package with the {product} seems to be stuck at the depot in {city}.
account_access | I can't log in to my account, it just says the account is locked.
account_access | My account ({email}) was disabled and nobody told me why.
account_access | The two-factor code never arrives on my phone, so I can't get into my account.
account_access | Since the last update on my {device} I get signed out and can't get back in.
account_access | Login fails with '{error}' even though I'm sure my password is right.
password_reset | I forgot my password, can you help me reset it?
password_reset | The password reset email never arrives at {email}.
password_reset | The reset link says it has expired every time I click it.
password_reset | How do I change my password? I can't find the option in the settings.
password_reset | Please send a new password reset link to {email}.
cancel_subscription | Please cancel my {plan} subscription, effective immediately.
cancel_subscription | How do I cancel? I don't want to be renewed again on {date}.
cancel_subscription | I want to end my membership before the next renewal.
cancel_subscription | The cancel button on my {device} does nothing, please cancel it for me.
cancel_subscription | Stop my subscription please, the account email is {email}.
technical_bug | The app crashes on my {device} whenever I open the {feature} screen.
technical_bug | I get '{error}' every time I try to export my data.
technical_bug | The {feature} page has been blank since yesterday's update.
technical_bug | Uploading a photo freezes the app on my {device}.
technical_bug | Notifications stopped working on my {device} after version {version}.
feature_request | It would be great if you added {wish}.
feature_request | Are there any plans to support {wish}?
feature_request | Could you please add {wish}? I'd use it every day.
feature_request | I'd love to see {wish} in the next release.
feature_request | Your competitors already offer {wish}, please consider it.
change_address | I moved to {city}, please update the delivery address on order {order}.
change_address | Can you change the shipping address for order {order} to {address}?
change_address | I typed the wrong street on my order, it should be {address}.
change_address | Please update my shipping address to {address}.
change_address | Order {order} hasn't shipped yet, can it go to {address} instead?
complaint | Your customer service is terrible, I waited {days} days for a reply.
complaint | The agent I spoke to on {date} was rude and hung up on me.
complaint | I'm very disappointed with the quality of the {product}.
complaint | This is the third time I'm contacting you about the same thing and nobody cares.
complaint | The courier left my {product} out in the rain and your staff just shrugged it off.
"""
GREETINGS = ["", "", "", "Hi, ", "Hello, ", "Hey - ", "Hi team, ", "Dear support, "]
CLOSINGS = ["Thanks in advance.", "Please help asap!!", "Thank you, {name}.", "Regards, {name}."]
WORDS = {  # comma-separated word lists
    "product": "wireless earbuds, standing desk, coffee grinder, running shoes, 4K monitor, "
    "yoga mat, smart thermostat, hiking backpack, blender, phone case, e-reader, desk lamp",
    "plan": "Premium, Pro, Family, annual, monthly Plus, Business",
    "device": "iPhone 13, Pixel 7, Samsung tablet, Windows laptop, MacBook, Android phone",
    "error": "Error 500, Invalid session, Network request failed, Unexpected token, Code 1042",
    "feature": "order history, checkout, settings, wishlist, invoices, saved items",
    "wish": "a dark mode, export to CSV, Apple Pay at checkout, shared family accounts, "
    "a home screen widget, bulk editing of orders, calendar sync, scheduled deliveries",
    "city": "Leeds, Austin, Lyon, Porto, Denver, Glasgow, Toronto, Utrecht, Graz, Adelaide",
    "street": "Maple Street, High Road, Station Lane, Elm Avenue, Harbour Way, Mill Close",
    "name": "Maria, Tom, Aisha, Kenji, Laura, Daniel, Priya, Sven, Chloe, Omar, Ruth, Mateo",
    "month": "January, February, March, April, May, June, July, September, October, November",
}


def parse_table(text: str) -> dict[str, list[str]]:
    """'key | template' lines -> {key: [template, ...]}, in order of appearance."""
    table: dict[str, list[str]] = {}
    for line in text.strip().splitlines():
        key, template = line.split(" | ", 1)
        table.setdefault(key, []).append(template)
    return table


TICKET_TEMPLATES = parse_table(TICKETS)
LABELS = list(TICKET_TEMPLATES)


def ticket_context(rng: random.Random) -> dict[str, str]:
    """Every slot a ticket template may use, drawn once so that a ticket stays consistent."""
    ctx = {key: rng.choice(words.split(", ")) for key, words in WORDS.items()}
    return ctx | {
        "email": f"{ctx['name'].lower()}{rng.randint(1, 99)}@example.com",
        "order": rng.choice(["#", "ORD-", "number "]) + str(rng.randint(100000, 9999999)),
        "amount": rng.choice("$€£") + f"{rng.randint(5, 300)}.{rng.choice(['00', '99'])}",
        "date": rng.choice([f"{ctx['month']} {rng.randint(1, 28)}", "last Tuesday", "the weekend"]),
        "days": str(rng.randint(3, 21)),
        "version": f"{rng.randint(3, 5)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
        "address": f"{rng.randint(2, 180)} {ctx['street']}, {ctx['city']}",
        "other_wish": rng.choice(WORDS["wish"].split(", ")),
    }


def add_typo(rng: random.Random, text: str) -> str:
    """Swap two neighbouring letters inside one longer word, as a hurried typist would."""
    words = text.split(" ")
    candidates = [i for i, word in enumerate(words) if len(word) >= 5 and word.isalpha()]
    if candidates:
        i = rng.choice(candidates)
        j = rng.randint(1, len(words[i]) - 3)
        words[i] = words[i][:j] + words[i][j + 1] + words[i][j] + words[i][j + 2 :]
    return " ".join(words)


def make_ticket(rng: random.Random, label: str) -> str:
    ctx = ticket_context(rng)
    first, second = rng.sample(TICKET_TEMPLATES[label], k=2)
    sentences = [first.format(**ctx)]
    if rng.random() < 0.35:  # a second core sentence; a second request asks for another thing
        sentences.append(second.format(**ctx | {"wish": ctx["other_wish"]}))
    if rng.random() < 0.5:
        sentences.append(rng.choice(CLOSINGS).format(**ctx))
    while len(re.findall(r"[.?!]+(?=\s|$)", " ".join(sentences))) > 3:  # 1-3 sentences
        sentences.pop()
    greeting = rng.choice(GREETINGS)
    if greeting and not sentences[0].startswith(("I ", "I'")):
        sentences[0] = sentences[0][0].lower() + sentences[0][1:]
    text = greeting + " ".join(sentences)
    if rng.random() < 0.12:
        text = add_typo(rng, text)
    return text.lower() if rng.random() < 0.05 else text


def make_tickets(rng: random.Random) -> list[dict[str, str]]:
    labels = [LABELS[i % len(LABELS)] for i in range(N_TICKETS)]  # balanced, then shuffled
    rng.shuffle(labels)
    tickets, seen = [], set()
    for label in labels:
        text = make_ticket(rng, label)
        while text in seen:  # no two tickets share a text
            text = make_ticket(rng, label)
        seen.add(text)
        tickets.append({"id": f"T-{len(tickets) + 1:05d}", "text": text, "expected": label})
    return tickets


# --- Documents -------------------------------------------------------------------------
# "kind | sentence" lines. The first sentence of a kind is its one-line gist and always opens
# the document; the body sentences follow in this order, one of them sometimes left out.
DOCUMENTS = """
meeting | In the {date} {team} meeting, the group agreed to {decision}.
meeting | {p1} opened by reviewing the last sprint, in which {n1} of {n2} planned tickets closed.
meeting | {p2} raised concerns that the on-call rotation is too thin for the launch week.
meeting | Most of the discussion was about whether the {product} dashboards are ready for customers.
meeting | Support reported {n3} tickets about {product} in the past two weeks, mostly onboarding.
meeting | Budget for the quarter is unchanged, though {p1} asked for a small buffer for contractors.
meeting | Everyone agreed that the documentation must be updated before any announcement.
meeting | Nobody objected to the proposal, although {p3} noted that the timeline is tight.
meeting | The team also discussed hiring; the pipeline now has {n4} candidates in final rounds.
meeting | {p2} will own the customer communication plan and share a draft with the team.
meeting | Action item: {p3} to confirm staffing with the {team2} team.
meeting | Action item: {p1} to update the roadmap page and flag any slipped milestones.
meeting | The decision will be revisited on {date2}, once fresh numbers are in.
incident | On {date}, {service} was degraded for {n1} minutes in {region} because {cause}.
incident | The first alert fired at {time} when the error rate crossed {pct} percent.
incident | {p1} was the on-call engineer and acknowledged the page within {n5} minutes.
incident | Roughly {n3} customers saw failed requests or slow responses during the window.
incident | The team rolled back the most recent change, which restored normal latency.
incident | No data was lost, but some requests had to be retried by clients.
incident | Status page updates were posted every thirty minutes until the incident was resolved.
incident | {p2} confirmed the root cause by comparing the deploy log with the metrics timeline.
incident | Monitoring missed the problem at first because the alert threshold was set too high.
incident | Support received {n4} tickets about the outage, and all of them have been answered.
incident | Follow-up: {p3} to lower the alert threshold and add a dashboard panel for it.
incident | The incident is classified as severity {sev}, and the postmortem is blameless.
incident | We will review the incident in the weekly reliability meeting on {date2}.
release | {product} {version}, released on {date}, adds {headline} and fixes {n1} reported bugs.
release | The headline feature was the most requested item on our public roadmap this year.
release | Admins can enable it in the workspace settings; it is off by default for old accounts.
release | Dashboard pages load about {pct} percent faster thanks to a new caching layer.
release | We fixed a bug where exported reports used the wrong time zone.
release | We fixed a crash when uploading images larger than {n5} megabytes on older phones.
release | Accessibility work includes better screen reader labels and higher contrast buttons.
release | The minimum supported browser versions have been raised; see the compatibility page.
release | Known issue: some users in {region} may get notifications twice, and a fix is coming.
release | The legacy v1 API will be switched off on {date2}, so integrations should move to v2.
release | Thanks to {p1} and {p2} for the detailed bug reports behind several of these fixes.
release | The update rolls out over the next two weeks, starting with a small share of workspaces.
release | As always, the full changelog is available in the developer portal.
feedback | Feedback on {product} in {month} was mostly positive; {topic} led the complaints.
feedback | We collected {n3} responses from surveys, support tickets and app store reviews.
feedback | The average satisfaction score was {score} out of 5, up slightly from last month.
feedback | Customers praised the new onboarding flow and said setup now takes minutes, not hours.
feedback | Several enterprise customers asked for better audit logs and role-based permissions.
feedback | A recurring theme was that invoices are hard to read for teams with many seats.
feedback | {p1} from the support team noted that response times slipped during the holiday week.
feedback | Feature requests were led by calendar integration, followed by dark mode and exports.
feedback | Churned customers most often cited price and missing integrations with their tools.
feedback | Net promoter score rose to {nps}, the highest since we started tracking it.
feedback | {p2} suggested a short in-app survey after key actions to get more targeted feedback.
feedback | The product team will review the top five requests in the planning meeting on {date2}.
feedback | Overall, reliability now looks good and the next priority should be usability.
"""
DOC_TEMPLATES = parse_table(DOCUMENTS)
DOC_WORDS = {  # semicolon-separated word lists
    "team": "platform; payments; growth; mobile; data; support operations",
    "product": "Atlas; Ledger Sync; Beacon; Harbor; Quill; Northstar",
    "service": "the checkout API; the search service; the login service; order sync",
    "region": "eu-west; us-east; the Nordic countries; Latin America; Southeast Asia",
    "decision": "push the launch back by two weeks; freeze new features until error rates drop; "
    "move the billing migration to next quarter; hire two more support engineers",
    "cause": "a config change exhausted the database connection pool; an expired TLS certificate "
    "broke calls to the payment provider; a bad deploy leaked memory in the API workers",
    "headline": "offline mode for the mobile app; single sign-on with SAML; scheduled CSV exports; "
    "a redesigned settings page; bulk actions for orders",
    "topic": "slow support replies; confusing pricing; missing integrations; app stability",
    "month": "January; February; March; April; May; June; September; October; November",
    "person": "Ana Ruiz; Ben Okafor; Chen Wei; Dana Kowalski; Elif Demir; Felix Braun; "
    "Grace Mensah; Hugo Laurent; Ines Costa; Jonas Berg",
}


def doc_context(rng: random.Random) -> dict[str, str]:
    """Every slot a document template may use; people and teams are distinct within one."""
    ctx = {key: rng.choice(words.split("; ")) for key, words in DOC_WORDS.items()}
    ctx["p1"], ctx["p2"], ctx["p3"] = rng.sample(DOC_WORDS["person"].split("; "), k=3)
    ctx["team"], ctx["team2"] = rng.sample(DOC_WORDS["team"].split("; "), k=2)
    day, n2 = rng.randint(1, 14), rng.randint(18, 40)
    ctx["date"], ctx["date2"] = f"{ctx['month']} {day}", f"{ctx['month']} {day + 7}"
    ctx["time"] = f"{rng.randint(8, 17):02d}:{rng.choice(['00', '15', '30', '45'])}"
    ctx["score"], ctx["version"] = f"{rng.uniform(3.4, 4.8):.1f}", f"{rng.randint(2, 6)}.{n2 % 9}"
    numbers = {"n1": rng.randint(12, n2), "n2": n2, "n3": rng.randint(40, 900),
               "n4": rng.randint(2, 60), "n5": rng.randint(3, 25), "pct": rng.randint(5, 40),
               "sev": rng.randint(1, 3), "nps": rng.randint(20, 60)}  # fmt: skip
    return ctx | {key: str(value) for key, value in numbers.items()}


def make_document(rng: random.Random, kind: str) -> str:
    gist, *body = DOC_TEMPLATES[kind]
    ctx = doc_context(rng)
    keep = sorted(rng.sample(range(len(body)), k=len(body) - rng.randint(0, 1)))
    sentences = [gist.format(**ctx)] + [body[i].format(**ctx) for i in keep]
    paragraphs, start = [], 0
    while start < len(sentences):  # paragraphs of 2-4 sentences; the last one may be shorter
        size = rng.randint(2, 4)
        paragraphs.append(" ".join(sentences[start : start + size]))
        start += size
    text = "\n\n".join(paragraphs)
    assert len(set(sentences)) == len(sentences) and 150 <= len(text.split()) <= 400
    return text


def make_documents(rng: random.Random) -> list[dict[str, str]]:
    kinds = list(DOC_TEMPLATES)  # meeting notes, incident reports, release notes, feedback
    return [
        {"id": f"D-{n:03d}", "text": make_document(rng, kinds[(n - 1) % len(kinds)])}
        for n in range(1, N_DOCUMENTS + 1)
    ]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the synthetic example inputs.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    tickets = make_tickets(rng)
    documents = make_documents(rng)
    write_jsonl(out / "tickets.jsonl", tickets)
    with (out / "tickets.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "text", "expected"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(tickets[:N_CSV_TICKETS])
    write_jsonl(out / "documents.jsonl", documents)
    (out / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8", newline="\n")
    print(f"wrote {len(tickets)} tickets, {len(documents)} documents and labels.txt to {out}")


if __name__ == "__main__":
    main()
