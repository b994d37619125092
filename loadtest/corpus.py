"""The text corpus of the traffic generator: what customers and agents say, as data tables.

Everything here is plain data read by ``loadtest.generator``; nothing is random by itself. Texts
are written so that the contact reasons of the demo rules file match them on purpose: an opener
filed under ``billing`` says "счёт", "оплата", "refund", "invoice" or "возврат", and openers of
other reasons avoid those words (no "насчёт", "download", "заранее спасибо"), so the category a
ticket ends up with is the one the generator meant. Placeholders in ``{braces}`` are filled by the
generator (``{order}``, ``{amount}``, ``{track}``, ``{phone}``, ``{email}``, ``{card}``,
``{handle}``, ``{vk}``, ``{wa}``, ``{name}``).
"""

from __future__ import annotations

from typing import Final

Lang = str  # "ru" | "en"

COMPANY: Final = "Sovushka"
COMPANY_RU: Final = "Совушка"
SUPPORT_ADDRESS: Final = "support@sovushka.example"
SUPPORT_DOMAIN: Final = "sovushka.example"
DESK_DOMAIN: Final = "desk.sovushka.example"
NOTIFY_DOMAIN: Final = "notify.sovushka.example"
MX_HOST: Final = "mx1.sovushka.example"
CALL_CENTRE_NUMBER: Final = "+74951234500"
WA_BUSINESS_NUMBER: Final = "74951234501"
VK_GROUP_ID: Final = 218374650
TELEGRAM_BOT_ID: Final = 7012345678
TELEGRAM_BOT_USERNAME: Final = "sovushka_support_bot"

REASONS: Final = (
    "billing",
    "access",
    "outage",
    "delivery",
    "account",
    "bug",
    "feature_request",
    "other",
)
REASON_WEIGHTS: Final = (20, 16, 9, 16, 10, 10, 6, 13)

# ---------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------

# (first name, last name, transliteration used for e-mail addresses and handles)
NAMES_RU: Final = (
    ("Иван", "Петров", "ivan.petrov"),
    ("Анна", "Смирнова", "anna.smirnova"),
    ("Дмитрий", "Кузнецов", "dmitry.kuznetsov"),
    ("Ольга", "Волкова", "olga.volkova"),
    ("Сергей", "Морозов", "sergey.morozov"),
    ("Екатерина", "Соколова", "ekaterina.sokolova"),
    ("Алексей", "Лебедев", "alexey.lebedev"),
    ("Мария", "Козлова", "maria.kozlova"),
    ("Павел", "Новиков", "pavel.novikov"),
    ("Наталья", "Фёдорова", "natalia.fedorova"),
    ("Андрей", "Егоров", "andrey.egorov"),
    ("Татьяна", "Павлова", "tatiana.pavlova"),
    ("Михаил", "Семёнов", "mikhail.semenov"),
    ("Юлия", "Голубева", "yulia.golubeva"),
    ("Николай", "Виноградов", "nikolay.vinogradov"),
    ("Елена", "Богданова", "elena.bogdanova"),
    ("Артём", "Орлов", "artem.orlov"),
    ("Светлана", "Макарова", "svetlana.makarova"),
    ("Владимир", "Зайцев", "vladimir.zaitsev"),
    ("Ксения", "Белова", "ksenia.belova"),
    ("Роман", "Комаров", "roman.komarov"),
    ("Дарья", "Киселёва", "daria.kiseleva"),
    ("Георгий", "Тарасов", "georgy.tarasov"),
    ("Полина", "Жукова", "polina.zhukova"),
)
NAMES_EN: Final = (
    ("James", "Miller", "james.miller"),
    ("Emily", "Clarke", "emily.clarke"),
    ("Oliver", "Bennett", "oliver.bennett"),
    ("Sophie", "Turner", "sophie.turner"),
    ("Daniel", "Hughes", "daniel.hughes"),
    ("Grace", "Walsh", "grace.walsh"),
    ("Lukas", "Becker", "lukas.becker"),
    ("Amira", "Haddad", "amira.haddad"),
    ("Mateo", "Rossi", "mateo.rossi"),
    ("Chloe", "Dubois", "chloe.dubois"),
    ("Noah", "Fischer", "noah.fischer"),
    ("Priya", "Sharma", "priya.sharma"),
)

# (domain, share) of customers' mailbox providers; the domain decides the Message-ID style
MAIL_DOMAINS_RU: Final = (
    ("mail.ru", 30),
    ("yandex.ru", 30),
    ("gmail.com", 20),
    ("bk.ru", 6),
    ("inbox.ru", 4),
    ("rambler.ru", 4),
    ("ooo-vektor.ru", 3),
    ("stroymarket.ru", 3),
)
MAIL_DOMAINS_EN: Final = (
    ("gmail.com", 45),
    ("outlook.com", 25),
    ("icloud.com", 10),
    ("proton.me", 8),
    ("brightlabs.io", 6),
    ("nordfreight.eu", 6),
)

# Russian mobile operator codes and foreign formats; UK numbers are from Ofcom's drama range and
# US ones from the 555-01xx fictional block, so no real subscriber is dialled by accident.
RU_MOBILE_CODES: Final = ("916", "925", "903", "905", "915", "926", "977", "985", "999", "968")
FOREIGN_PHONES: Final = (  # (E.164 prefix, digits to add, share)
    ("+447700900", 3, 3),  # +44 7700 900xxx
    ("+1415555010", 1, 1),  # +1 (415) 555-010x
    ("+1212555014", 1, 1),
)

# The desk's agents (the roster of examples/rules.demo.yaml) and who picks up what.
AGENTS: Final = (
    "a.ivanova",
    "m.sokolova",
    "p.petrov",
    "d.smirnov",
    "e.kuznetsova",
    "i.popov",
    "o.volkova",
)
VIP_AGENTS: Final = ("a.ivanova", "m.sokolova")
BILLING_AGENTS: Final = ("p.petrov", "a.ivanova", "o.volkova")
TECH_AGENTS: Final = ("d.smirnov", "m.sokolova")
DELIVERY_AGENTS: Final = ("e.kuznetsova", "o.volkova")
GENERAL_AGENTS: Final = ("e.kuznetsova", "i.popov", "o.volkova")

# ---------------------------------------------------------------------------------------------
# Customer openers: (subject, body) per reason and language
# ---------------------------------------------------------------------------------------------

OPENERS: Final[dict[str, dict[Lang, tuple[tuple[str, str], ...]]]] = {
    "billing": {
        "ru": (
            (
                "Двойное списание по заказу {order}",
                "Здравствуйте! С карты дважды списали оплату за заказ {order} на {amount} ₽. "
                "Верните, пожалуйста, лишнее списание.",
            ),
            (
                "Нужен счёт для бухгалтерии",
                "Добрый день. Выставьте, пожалуйста, счёт на юрлицо по заказу {order}, "
                "бухгалтерия без счёта оплату не проведёт.",
            ),
            (
                "Возврат средств",
                "Оформила возврат товара неделю назад, а деньги ({amount} ₽) так и не пришли. "
                "Когда будет возврат?",
            ),
            (
                "Оплата не проходит",
                "Пытаюсь оплатить заказ {order}, банк пишет «операция отклонена». Что делать?",
            ),
            (
                "Счет-фактура",
                "Пришлите, пожалуйста, закрывающие документы и счет-фактуру за февраль.",
            ),
        ),
        "en": (
            (
                "Charged twice for order {order}",
                "Hi, my card was charged twice for order {order} ({amount} RUB). "
                "Could you refund the duplicate payment?",
            ),
            (
                "Invoice request",
                "Hello, please send me an invoice for order {order} with our VAT number, "
                "our accounting team needs it by Friday.",
            ),
            (
                "Refund status",
                "I returned the item ten days ago and still have no refund. Order {order}.",
            ),
        ),
    },
    "access": {
        "ru": (
            (
                "Не могу войти",
                "Не могу войти в личный кабинет, пишет «неверный пароль», хотя я его не менял.",
            ),
            (
                "Не приходит код для сброса пароля",
                "Нажимаю «забыли пароль», письмо со ссылкой не приходит уже час.",
            ),
            (
                "Заблокировали вход",
                "После трёх попыток войти аккаунт заблокировали. Помогите восстановить доступ.",
            ),
        ),
        "en": (
            (
                "Can't log in",
                "I can't log in to the app since this morning, it says my password is wrong.",
            ),
            (
                "Password reset link expired",
                "The password reset link says it has expired every time I click it.",
            ),
            (
                "Two-factor code never arrives",
                "The SMS code for login never arrives, so I am locked out.",
            ),
        ),
    },
    "outage": {
        "ru": (
            (
                "Сайт не работает",
                "У вас сайт не работает, вместо каталога ошибка 500. Это у всех так?",
            ),
            (
                "Ошибка 500 при оформлении",
                "На шаге подтверждения выдаёт ошибка 500, уже полчаса не могу оформить заказ.",
            ),
            (
                "Приложение не работает",
                "Мобильное приложение не работает с утра: бесконечная загрузка.",
            ),
        ),
        "en": (
            (
                "Site is down",
                "Your website is down for me, I get a blank page with error 500.",
            ),
            (
                "Checkout down?",
                "Is checkout down? The order page keeps timing out for everyone in our office.",
            ),
        ),
    },
    "delivery": {
        "ru": (
            (
                "Где мой заказ {order}?",
                "Доставка по заказу {order} должна была быть вчера, курьер так и не приехал.",
            ),
            (
                "Курьер не позвонил",
                "Курьер отметил «клиент не вышел на связь», хотя мне никто не звонил. "
                "Трек {track}.",
            ),
            (
                "Перенести доставку",
                "Можно перенести доставку заказа {order} на субботу? В пятницу меня не будет.",
            ),
            (
                "Трек-номер не отслеживается",
                "Трек-номер {track} не отслеживается уже третий день, доставка застряла?",
            ),
        ),
        "en": (
            (
                "Where is my parcel?",
                "The tracking for {track} has not moved for four days. When will the courier come?",
            ),
            (
                "Delivery address change",
                "Can I change the delivery address for order {order}? I moved last week.",
            ),
        ),
    },
    "account": {
        "ru": (
            (
                "Смена почты в аккаунте",
                "Хочу поменять электронную почту в аккаунте, старый ящик больше не использую.",
            ),
            (
                "Удалить аккаунт",
                "Прошу удалить мой аккаунт и все персональные данные.",
            ),
            (
                "Объединить аккаунты",
                "У меня два аккаунта, на старый и новый номер. Можно их объединить?",
            ),
        ),
        "en": (
            (
                "Change account email",
                "How do I change the e-mail address on my account? I have a new work address.",
            ),
            (
                "Close my account",
                "Please close my account and delete my personal data under GDPR.",
            ),
        ),
    },
    "bug": {
        "ru": (
            (
                "Баг в корзине",
                "Кажется, баг: при изменении количества товара в корзине цена не пересчитывается.",
            ),
            (
                "Приложение вылетает",
                "Приложение вылетает при открытии раздела «Избранное», Android 14.",
            ),
            (
                "Кнопка не нажимается",
                "На странице товара кнопка «В корзину» серая и не нажимается, похоже на баг.",
            ),
        ),
        "en": (
            (
                "Bug: filters reset",
                "Found a bug: the catalogue filters reset each time I go back from a product page.",
            ),
            (
                "App crash on iOS",
                "The iOS app crashes when I open my order history. Looks like a bug.",
            ),
        ),
    },
    "feature_request": {
        "ru": (
            (
                "Предложение",
                "Предложение: добавьте, пожалуйста, тёмную тему в приложение.",
            ),
            (
                "Выгрузка в Excel",
                "Было бы удобно выгружать историю заказов в Excel. Добавьте такую возможность.",
            ),
        ),
        "en": (
            (
                "Feature request: Apple Pay",
                "Feature request: it would be great to pay with Apple Pay in the app.",
            ),
            (
                "Suggestion",
                "It would be great to have a wishlist that I can share with my family.",
            ),
        ),
    },
    "other": {
        "ru": (
            (
                "Вопрос",
                "Подскажите, у вас есть пункт самовывоза в Казани?",
            ),
            (
                "Режим работы",
                "Вы работаете в праздничные дни?",
            ),
            (
                "Сертификат",
                "Можно ли купить подарочный сертификат и отправить его другу?",
            ),
            (
                "Гарантия",
                "Какая гарантия на кофемашины и где её посмотреть?",
            ),
        ),
        "en": (
            (
                "Question",
                "Do you ship to Kazakhstan?",
            ),
            (
                "Gift cards",
                "Hello, do you sell gift cards?",
            ),
            (
                "Warranty",
                "What is the warranty period for coffee machines?",
            ),
        ),
    },
}

# A thank-you that opens a ticket by itself (kind "thanks", usually category "other").
THANKS_OPENERS: Final[dict[Lang, tuple[tuple[str, str], ...]]] = {
    "ru": (
        ("Благодарность", "Хочу сказать спасибо оператору Ирине, очень помогла вчера!"),
        ("Спасибо", "Спасибо за быструю помощь, всё получилось."),
    ),
    "en": (
        ("Thank you", "Just wanted to say thank you to your team, great service!"),
        ("Thanks", "Thank you for sorting this out so quickly."),
    ),
}

# Wrapped around an opener to make it a complaint.
COMPLAINT_LEADS: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": (
        "Это безобразие!",
        "Это официальная жалоба.",
        "Третий раз обращаюсь, это уже безобразие.",
        "Жалоба.",
    ),
    "en": (
        "This is a formal complaint.",
        "I want to file a complaint.",
    ),
}
COMPLAINT_TAILS: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": (
        "Если не решите сегодня, напишу претензию.",
        "Требую разобраться и ответить по существу.",
    ),
    "en": (
        "If this is not fixed today I will escalate the complaint.",
        "I expect a proper answer, not a template.",
    ),
}

# Sent while waiting for the first answer.
NUDGES: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": ("Алло?", "Есть кто живой?", "???", "Жду ответа", "Подскажите, пожалуйста"),
    "en": ("Hello?", "Anyone there?", "???", "Still waiting", "Any update?"),
}
# Additions right after the opener (the customer sends a second message).
ADDENDA: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": (
        "Номер заказа {order}",
        "Скрин прикладываю",
        "Срочно, пожалуйста",
        "Забыл добавить: заказ {order}",
    ),
    "en": ("Order number is {order}", "Screenshot attached", "It is urgent"),
}
# A customer answering an agent's question (the ticket was pending).
PENDING_ANSWERS: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": (
        "Номер заказа {order}, оформлял {date}.",
        "Да, пробовал из другого браузера — то же самое.",
        "Прикладываю скриншот.",
        "Сумма {amount} ₽, списание было {date}.",
        "Адрес тот же, что в заказе.",
    ),
    "en": (
        "The order number is {order}.",
        "Yes, I tried another browser, same result.",
        "Screenshot attached.",
        "The amount was {amount} RUB on {date}.",
    ),
}
# Writing again after the ticket was solved, within the reopen window.
REOPEN_TEXTS: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": (
        "Снова то же самое, проблема вернулась.",
        "Вы писали, что решили, но ничего не изменилось.",
        "Деньги так и не пришли.",
    ),
    "en": (
        "It happened again.",
        "You said it was fixed, but nothing changed.",
        "Still nothing on my side.",
    ),
}
# A thank-you after the solve (reopens the ticket; the agent solves it again).
THANKS_AFTER: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": ("Спасибо!", "Спасибо, всё работает", "Большое спасибо за помощь 🙏"),
    "en": ("Thank you!", "Thanks, it works now", "Thank you so much 🙏"),
}

# ---------------------------------------------------------------------------------------------
# Agents (quoted in customers' e-mail replies; never records of their own)
# ---------------------------------------------------------------------------------------------

AGENT_QUESTIONS: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": (
        "Здравствуйте! Уточните, пожалуйста, номер заказа и дату покупки.",
        "Добрый день! Подскажите, из какого браузера вы заходите?",
        "Здравствуйте! Пришлите, пожалуйста, скриншот экрана.",
    ),
    "en": (
        "Hello! Could you tell us the order number and the purchase date?",
        "Hi! Which browser and device are you using?",
        "Hello! Please send us a screenshot.",
    ),
}
AGENT_ANSWERS: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": (
        "Здравствуйте! Мы всё проверили и исправили, попробуйте ещё раз.",
        "Добрый день! Заявку передали в ответственный отдел, ответим в течение дня.",
        "Здравствуйте! Готово, изменения вступят в силу в течение часа.",
    ),
    "en": (
        "Hello! We have checked and fixed it, please try again.",
        "Hi! We passed your request to the team in charge and will get back today.",
        "Hello! Done, the change will take effect within an hour.",
    ),
}
SIGNATURES: Final[dict[Lang, str]] = {
    "ru": "С уважением,\nслужба поддержки «Совушки»",
    "en": "Kind regards,\nSovushka Support",
}
GREETINGS: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": ("Здравствуйте!", "Добрый день.", "Доброе утро!", "Добрый вечер."),
    "en": ("Hello,", "Hi,", "Dear Support,", "Good morning,"),
}
SIGNOFFS: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": ("С уважением,", "Жду ответа.", "--"),
    "en": ("Best regards,", "Cheers,", "Kind regards,"),
}

# ---------------------------------------------------------------------------------------------
# Personal data planted in texts (one placeholder each)
# ---------------------------------------------------------------------------------------------

PII_SNIPPETS: Final[dict[str, dict[Lang, tuple[str, ...]]]] = {
    "phone": {
        "ru": ("Мой телефон для связи: {phone}", "Перезвоните мне на {phone}", "Тел. {phone}"),
        "en": ("You can call me on {phone}", "My number: {phone}"),
    },
    "email": {
        "ru": ("Почта для ответа: {email}", "Напишите мне на {email}"),
        "en": ("Please reply to {email}", "My e-mail is {email}"),
    },
    "card": {
        "ru": ("Карта {card}", "Платил картой {card}, проверьте"),
        "en": ("The card was {card}", "I paid with card {card}"),
    },
    "handle": {
        "ru": ("Мой телеграм {handle}", "Можно в телегу {handle}"),
        "en": ("My Telegram is {handle}", "Ping me on Telegram: {handle}"),
    },
    "vk": {
        "ru": ("Моя страница https://{vk}", "Пишите в личку: {vk}"),
        "en": ("My VK page: https://{vk}",),
    },
    "wa": {
        "ru": ("Удобнее в WhatsApp: https://{wa}", "Вотсап {wa}"),
        "en": ("WhatsApp is easier: https://{wa}",),
    },
}
PII_KIND_WEIGHTS: Final = (
    ("phone", 30),
    ("email", 22),
    ("card", 18),
    ("handle", 12),
    ("vk", 9),
    ("wa", 9),
)

# ---------------------------------------------------------------------------------------------
# Phone calls
# ---------------------------------------------------------------------------------------------

CALL_TRANSCRIPT: Final[dict[Lang, str]] = {
    "ru": "Оператор: Служба поддержки «Совушки», здравствуйте. Клиент: {body} Оператор: {answer}",
    "en": "Agent: Sovushka support, hello. Caller: {body} Agent: {answer}",
}
VOICEMAIL: Final[dict[Lang, tuple[str, ...]]] = {
    "ru": (
        "Здравствуйте, это {name}. {body} Перезвоните, пожалуйста.",
        "Добрый день. {body} Мой номер {phone}.",
    ),
    "en": ("Hi, this is {name}. {body} Please call me back.",),
}

# ---------------------------------------------------------------------------------------------
# Channels' surroundings
# ---------------------------------------------------------------------------------------------

PAGE_URLS: Final[dict[str, tuple[str, ...]]] = {
    "billing": ("https://sovushka.example/account/payments", "https://sovushka.example/checkout"),
    "access": ("https://sovushka.example/login", "https://sovushka.example/restore"),
    "outage": ("https://sovushka.example/catalog", "https://sovushka.example/checkout"),
    "delivery": ("https://sovushka.example/orders", "https://sovushka.example/delivery"),
    "account": ("https://sovushka.example/account/settings",),
    "bug": ("https://sovushka.example/cart", "https://sovushka.example/favorites"),
    "feature_request": ("https://sovushka.example/help",),
    "other": ("https://sovushka.example/", "https://sovushka.example/help/faq"),
}
FORM_IDS: Final[dict[str, str]] = {
    "billing": "refund-request",
    "bug": "bug-report",
    "feature_request": "ideas",
}
DEFAULT_FORM_ID: Final = "contact-us"
VK_POSTS: Final = (4102, 4107, 4111, 4115, 4120, 4126)
TELEGRAM_CALLBACK_DATA: Final = ("csat:5", "csat:4", "menu:orders", "menu:operator")
GROUP_POSTS: Final = (
    "Скидки недели: до -30% на кофемашины ☕",
    "Новое поступление в каталоге",
    "Пункты выдачи работают до 21:00",
)
ATTACHMENT_NAMES: Final = ("screenshot.png", "IMG_2048.png", "error.png")
MAILERS: Final = (
    "Mozilla Thunderbird 128.7.0",
    "Microsoft Outlook 16.0",
    "Apple Mail (2.3776.700.51)",
    "Roundcube Webmail/1.6.9",
)
