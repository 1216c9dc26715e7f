"""What a new sandbox holds: a login, employees with internal numbers, a few clients."""
LOGIN = ("admin@sandbox.megaplan.ru", "sandbox-secret-42", "1000001")

EMPLOYEES = [
    # id, first, last, position, internal number
    ("1000001", "Администратор", "Песочницын", "Администратор", None),
    ("1000002", "Иван", "Иванов", "Менеджер по продажам", "101"),
    ("1000003", "Мария", "Петрова", "Старший менеджер", "102"),
    ("1000004", "Пётр", "Сидоров", "Менеджер по продажам", "103"),
    ("1000005", "Ольга", "Васильева", "Бухгалтер", None),
]

CLIENTS = [
    # contentType, fields, phone, responsible id
    ("ContractorCompany", {"name": "ООО Ромашка"}, "+7 (495) 123-45-67", "1000003"),
    ("ContractorHuman", {"firstName": "Сергей", "lastName": "Кузнецов"}, "79161234567", "1000002"),
    ("ContractorHuman", {"firstName": "Анна", "lastName": "Смирнова"}, "8 (903) 555-12-34", None),
]

TODO_CATEGORIES = [
    # id, name, masterType: an account has «Звонок» among its categories (GET /todoCategory)
    ("1", "Звонок", "call"),
    ("2", "Встреча", "meeting"),
    ("3", "Дело", "todo"),
]

PROGRAM_ID = "1"  # «Продажи»: the deal scheme every sandbox deal belongs to (Deal.program is required)

DEALS = [
    # index in CLIENTS, name, manager id: ООО Ромашка's open deal is Сидоров's, its client
    # card Петрова's, so «Сначала ответственный по сделке» has something to show
    (0, "Поставка оборудования", "1000004"),
]
