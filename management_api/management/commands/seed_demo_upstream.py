"""Fill the embedded Management API with a realistic demo project (idempotent, deterministic:
the same keys, settings, salts, inclusions and history every time; only timestamps, ids and
deployment keys — which are credentials — differ).

Everything goes through the services, so every version in the history is a genuine write.
"""

import datetime
import random
import time

from django.core.management.base import BaseCommand
from django.db import transaction

from management_api import services
from management_api.models import Deployment, Experiment
from management_api.services import SALT_ALPHABET

PROJECT_ID = "100001"
PROJECT_NAME = "Demo project"
DEPLOYMENTS = [("web-client", "client"), ("ios", "client"), ("android", "client"), ("backend", "server")]
AUTHORS = ["alice@example.com", "bob@example.com", "carol@example.com", "dmitri@example.com", "ci-bot"]
TAG_POOL = ["checkout", "growth", "onboarding", "mobile", "web", "pricing", "search", "retention", "q3", "q4", "prod", "staging"]
COUNTRIES = ["United States", "Canada", "Germany", "France", "Japan", "Brazil", "India", "United Kingdom"]
PLATFORMS = ["iOS", "Android", "Web"]

EXPERIMENTS = [
    ("checkout-button-color", "Checkout button colour", "Green vs blue primary button on the checkout page"),
    ("onboarding-tooltips", "Onboarding tooltips", "Guided tooltips for first-session users"),
    ("search-ranking-v2", "Search ranking v2", "New learning-to-rank model for product search"),
    ("pricing-page-annual-default", "Annual plan preselected", "Preselect the annual plan on the pricing page"),
    ("free-shipping-threshold", "Free shipping threshold", "Lower the free shipping threshold from $50 to $35"),
    ("push-reminder-cadence", "Push reminder cadence", "Daily vs every-other-day cart reminders"),
    ("homepage-hero-video", "Homepage hero video", "Autoplay video in the homepage hero"),
    ("signup-social-login", "Social login on signup", "Offer Google and Apple sign-in on the signup form"),
    ("recommendations-carousel", "Recommendations carousel", "Personalised carousel under the product details"),
    ("dark-mode-default", "Dark mode by default", "Follow the OS theme on first launch"),
    ("trial-length-14-vs-30", "Trial length", "14-day vs 30-day free trial"),
    ("cart-upsell-modal", "Cart upsell modal", "Suggest accessories when adding to cart"),
    ("email-subject-personalisation", "Personalised email subjects", "First name in weekly digest subject lines"),
    ("checkout-one-page", "One-page checkout", "Collapse the three checkout steps into one page"),
    ("price-anchoring", "Price anchoring", "Show the crossed-out list price next to the sale price"),
    ("referral-bonus-amount", "Referral bonus amount", "$10 vs $20 referral credit"),
    ("search-autocomplete", "Search autocomplete", "Suggest queries after two characters"),
    ("ios-paywall-layout", "iOS paywall layout", "Vertical plan cards on the iOS paywall"),
    ("android-bottom-nav", "Android bottom navigation", "Five-tab bottom navigation on Android"),
    ("backend-cache-ttl", "Catalogue cache TTL", "Shorter cache TTL for catalogue responses"),
    ("review-stars-in-listing", "Review stars in listings", "Show average rating in search results"),
    ("newsletter-popup-delay", "Newsletter popup delay", "Delay the newsletter popup to 30 seconds"),
    ("wishlist-share", "Shareable wishlists", "Let users share a wishlist link"),
    ("order-tracking-map", "Order tracking map", "Live courier map on the order page"),
    ("gift-wrap-option", "Gift wrap option", "Offer gift wrapping at checkout"),
    ("localised-currency", "Localised currency", "Show prices in the visitor's currency"),
    ("support-chat-proactive", "Proactive support chat", "Open chat after two failed payment attempts"),
    ("bundle-discount", "Bundle discount", "10% off when buying three or more items"),
    ("loyalty-tier-badges", "Loyalty tier badges", "Show tier badges on the account page"),
    ("image-lazy-loading", "Image lazy loading", "Native lazy loading for listing images"),
]


class Command(BaseCommand):
    help = "Create the demo project 100001 with deployments and ~30 experiments (does nothing if already there)."

    def handle(self, *args, **options):
        started = time.monotonic()
        if Experiment.objects.filter(project_id=PROJECT_ID, key=EXPERIMENTS[0][0]).exists():
            self.stdout.write("Demo upstream already seeded; nothing to do.")
            return
        with transaction.atomic():
            count = seed(random.Random(42))
        self.stdout.write(f"Seeded project {PROJECT_ID} with {count} experiments in {time.monotonic() - started:.1f}s.")


def _segment(rng: random.Random, variant_keys: list[str], index: int) -> dict:
    choice = rng.randrange(3)
    if choice == 0:
        conditions = [{"prop": "country", "op": "is", "type": "property", "values": rng.sample(COUNTRIES, 2)}]
    elif choice == 1:
        conditions = [
            {"prop": "platform", "op": "is", "type": "property", "values": [rng.choice(PLATFORMS)]},
            {"prop": "gp:plan", "op": "is not", "type": "property", "values": ["enterprise"]},
        ]
    else:
        conditions = [{"prop": "gp:signup_days", "op": "less", "type": "property", "values": [str(rng.choice([7, 14, 30]))]}]
    return {
        "name": f"Segment {index + 1}",
        "conditions": conditions,
        "percentage": rng.choice([10, 25, 50, 100]),
        "bucketingKey": "amplitude_id",
        "rolloutWeights": {key: 1 for key in variant_keys},
    }


def _variants(rng: random.Random, index: int) -> list[dict]:
    if index % 4 == 0:
        return [
            {"key": "control", "name": "Control", "description": "Current experience", "payload": {}},
            {"key": "treatment-a", "name": "Treatment A", "description": "First alternative", "payload": {"variant": "a", "intensity": 1}},
            {"key": "treatment-b", "name": "Treatment B", "description": "Second alternative", "payload": {"variant": "b", "intensity": 2}},
        ]
    if index % 3 == 0:
        return [
            {"key": "control", "name": "Control", "payload": {"color": "#1f6feb"}},
            {"key": "treatment", "name": "Treatment", "payload": {"color": "#2da44e", "label": "Buy now"}},
        ]
    return [{"key": "control"}, {"key": "treatment"}]


def seed(rng: random.Random) -> int:
    services.project_ensure(project_id=PROJECT_ID, name=PROJECT_NAME)
    deployment_ids = []
    for label, kind in DEPLOYMENTS:
        existing = Deployment.objects.filter(project_id=PROJECT_ID, label=label).first()
        deployment = existing or services.deployment_create(
            body={"projectId": PROJECT_ID, "label": label, "type": kind}, project_ids=None
        )
        deployment_ids.append(str(deployment.id))
    today = datetime.date(2026, 11, 2)
    for index, (key, name, description) in enumerate(EXPERIMENTS):
        author = rng.choice(AUTHORS)
        variants = _variants(rng, index)
        variant_keys = [variant["key"] for variant in variants]
        experiment = services.experiment_create(
            body={
                "projectId": PROJECT_ID,
                "key": key,
                "name": name,
                "description": "",
                "variants": variants,
                "rolloutWeights": {k: 1 for k in variant_keys},
                "targetSegments": [_segment(rng, variant_keys, i) for i in range(rng.randrange(3))],
                "deployments": rng.sample(deployment_ids, rng.randint(1, 2)),
                "evaluationMode": "local" if index % 5 == 0 else "remote",
                "experimentType": ["hypothesis-testing", "hypothesis-testing", "no-harm", "multi-arm-bandit"][index % 4],
            },
            by=author,
            project_ids=None,
            bucketing_salt="".join(rng.choice(SALT_ALPHABET) for _ in range(8)),
        )
        editor = rng.choice(AUTHORS)
        services.experiment_edit(
            experiment_id=experiment.id,
            body={"description": description, "tags": rng.sample(TAG_POOL, rng.randint(1, 3))},
            by=editor,
        )
        for variant_key in variant_keys:
            size = rng.choice([0, 3, 12, 40, 250]) if index % 7 else 1900
            if size:
                ids = [f"user-{index:02d}-{variant_key}-{n:04d}@example.com" for n in range(size)]
                services.inclusions_add(
                    experiment_id=experiment.id, variant_key=variant_key, body={"inclusions": ids}, by="ci-bot"
                )
        phase = index % 6
        start = today - datetime.timedelta(days=rng.randint(5, 60))
        if phase in (1, 2, 3):  # running
            services.experiment_edit(
                experiment_id=experiment.id,
                body={"enabled": True, "startDate": start.isoformat(), "rolloutPercentage": rng.choice([5, 10, 25, 50])},
                by=rng.choice(AUTHORS),
            )
            if phase == 3:
                services.experiment_edit(experiment_id=experiment.id, body={"rolloutPercentage": 100}, by="ci-bot")
        elif phase == 4:  # ran, stopped: decision-made, then archived for some
            services.experiment_edit(
                experiment_id=experiment.id,
                body={"enabled": True, "startDate": start.isoformat(), "rolloutPercentage": 50},
                by=rng.choice(AUTHORS),
            )
            services.experiment_edit(
                experiment_id=experiment.id,
                body={"enabled": False, "endDate": (start + datetime.timedelta(days=21)).isoformat()},
                by=rng.choice(AUTHORS),
            )
            if index % 12 == 4:
                services.experiment_edit(experiment_id=experiment.id, body={"archive": True}, by=rng.choice(AUTHORS))
        if index % 8 == 5:
            services.experiment_edit(
                experiment_id=experiment.id,
                body={
                    "exposureEvent": {
                        "event_type": "_active",
                        "filters": [
                            {
                                "group_type": "User",
                                "subprop_key": "platform",
                                "subprop_op": "is",
                                "subprop_type": "user",
                                "subprop_value": [rng.choice(PLATFORMS)],
                            }
                        ],
                    },
                    "stickyBucketing": True,
                },
                by=rng.choice(AUTHORS),
            )
    return len(EXPERIMENTS)
