"""The text of the SMS that carries a code.

The code comes first so it shows in the notification preview; when the tenant names a
domain the last line is the WebOTP / SMS Retriever form ``@domain #code`` that lets browsers
and phones fill the code in without the user typing it.
"""

from __future__ import annotations

_TEMPLATES = {
    "en": "{code} is your {brand} verification code. Do not share it.",
    "fr": "{code} est votre code de vérification {brand}. Ne le partagez pas.",
    "es": "{code} es tu código de verificación de {brand}. No lo compartas.",
    "de": "{code} ist Ihr {brand} Bestätigungscode. Geben Sie ihn nicht weiter.",
}
SUPPORTED_LANGUAGES = frozenset(_TEMPLATES)


def render_text(code: str, *, brand: str, locale: str | None, domain: str | None) -> str:
    """Write the message for ``code``; an unknown or absent locale falls back to English."""
    language = (locale or "en").split("-")[0].lower()
    text = _TEMPLATES.get(language, _TEMPLATES["en"]).format(code=code, brand=brand)
    if domain:
        text += f"\n\n@{domain} #{code}"
    return text
