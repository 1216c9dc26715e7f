"""Forms of the settings page; labels are the provider's own wording (seed, steps 1–7)."""
from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from wtforms.i18n import get_translations as wtforms_translations
from wtforms import BooleanField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from megaplan_plugin.calls import deadlines, who_answers
from megaplan_plugin.web.inputs import Printable
from megaplan_plugin.web import timezones


class RussianForm(FlaskForm):
    """WTForms' own messages (e.g. «Неверный вариант.») in Russian, with no Babel needed."""

    class Meta:
        locales = ("ru",)

        def get_translations(self, form):
            return wtforms_translations(self.locales)

        def wrap_formdata(self, form, formdata):
            # Pages post form-encoded data. Flask-WTF would read a JSON body as well, whose
            # numbers, lists and booleans no field here expects: a JSON body fills no field.
            if request.is_json and not request.form:
                return None
            return super().wrap_formdata(form, formdata)


COMMUNICATION_TYPES = [("in", "входящие"), ("out", "исходящие"), ("missed", "пропущенные")]
ESCALATE_TO = [("default", "ответственному по умолчанию"), ("supervisor", "руководителю")]
_HH_MM = r"^([01]\d|2[0-3]):[0-5]\d$"
RECORDING_DAYS = [(30, "30 дней"), (90, "90 дней"), (365, "365 дней"), (0, "пока их хранит АТС")]


def _days(value) -> int:
    """«Хранить записи»: 0 stands for "as long as the PBX keeps them" (None in Settings)."""
    if value in (None, "", "None"):
        return 0
    return int(value)



class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form):
        allowed = {str(value) for value, *_ in self.iter_choices()}
        unknown = [value for value in self.data or () if str(value) not in allowed]
        if unknown:
            raise ValidationError("Недопустимое значение: " + ", ".join(map(str, unknown)))


class CredentialForm(RussianForm):
    # Printable: a NUL or control character is refused beside the field (PostgreSQL text
    # cannot hold NUL; no Megaplan login, password or domain has one).
    title = StringField("Название", validators=[
        DataRequired("Укажите название"), Length(max=100), Printable()])
    login = StringField("Логин", validators=[
        DataRequired("Укажите логин пользователя Мегаплан"), Length(max=200), Printable()])
    # Never sent back: a failed check keeps it in the browser (settings.js, data-keep-password).
    password = PasswordField("Пароль", validators=[
        DataRequired("Укажите пароль"), Length(max=200), Printable()])
    domain = StringField("Домен", description="в формате YOURDOMAIN.megaplan.ru",
                         validators=[DataRequired("Укажите домен Мегаплан"), Length(max=255), Printable()])


class CredentialEditForm(CredentialForm):
    password = PasswordField("Пароль", description="оставьте пустым, чтобы не менять",
                             validators=[Optional(), Length(max=200), Printable()])


class DeleteCredentialForm(RussianForm):
    confirm = BooleanField("Да, удалить учетные данные, хотя интеграция их использует")


class SettingsForm(RussianForm):
    credential_id = SelectField("Учетные данные", coerce=int,
                                validators=[DataRequired("Выберите учетные данные")])
    active = BooleanField("Активировать интеграцию")
    filter_by_numbers = BooleanField("Фильтровать по виртуальным номерам")
    virtual_numbers = MultiCheckboxField("Список виртуальных номеров")
    default_responsible_id = SelectField("Ответственный по умолчанию", default="")
    route_to_manager = BooleanField("Включить переадресацию на персонального менеджера")
    deal_manager_first = BooleanField(
        "Сначала ответственный по сделке",
        description="если у клиента есть открытая сделка, звонок идёт менеджеру сделки, а потом ответственному за клиента")
    route_fallback = SelectField(
        "Если менеджер недоступен", choices=who_answers.FALLBACKS, default=who_answers.PBX,
        description="менеджер уволен или в отпуске (так сказано в Мегаплан), а с отметкой ниже — "
                    "и вне рабочего времени; причина видна в журнале")
    route_respect_hours = BooleanField(
        "Вне рабочего времени менеджер недоступен",
        description="рабочие дни и часы — те же, что в разделе «Пропущенные звонки»")
    link_open_deal = BooleanField(
        "Связывать звонок с открытой сделкой клиента",
        description="коммуникация по звонку связывается с открытой сделкой клиента; "
                    "если их несколько — с последней изменённой")
    create_client_on_incoming = BooleanField(
        "При входящем звонке с неизвестного номера в Мегаплан будет создан новый клиент")
    create_contact_on_outgoing = BooleanField(
        "При исходящем звонке на неизвестный номер в Мегаплане будет создан новый контакт")
    create_communication = BooleanField("Создавать коммуникацию по звонку")
    communication_types = MultiCheckboxField("Типы звонков", choices=COMMUNICATION_TYPES)
    save_unknown_employees = BooleanField(
        "История звонков сотрудников компании, не присутствующих в Мегаплан, будет сохранена "
        "от имени выбранного пользователя")
    unknown_employee_user_id = SelectField("Пользователь Мегаплан", default="")
    time_zone = SelectField("Часовой пояс", choices=timezones.ZONES, default=timezones.DEFAULT,
                            description="в нём журнал и состояние интеграции показывают время звонков")
    copy_recordings = BooleanField(
        "Копировать записи в Мегаплан",
        description="после записи звонка файл загружается в Мегаплан и прикрепляется к коммуникации звонка, "
                    "а без неё — к карточке клиента")
    recording_days = SelectField(
        "Хранить записи", choices=RECORDING_DAYS, default=90, coerce=_days,
        description="столько дней ссылки на записи в Мегаплан открываются; потом они недоступны")

    # Missed calls (calls/callbacks.py)
    callback_within = SelectField("Перезвонить в течение", choices=deadlines.WITHIN, default=deadlines.DEFAULT_WITHIN,
                                  description="срок для перезвона по пропущенному звонку; считается в рабочее время")
    work_days = MultiCheckboxField("Рабочие дни", choices=deadlines.WEEKDAYS, coerce=int,
                                   default=deadlines.DEFAULT_DAYS,
                                   description="без отмеченных дней срок считается круглосуточно")
    work_start = StringField("Рабочее время с", default=deadlines.DEFAULT_START,
                             validators=[Regexp(_HH_MM, message="Время в формате ЧЧ:ММ, например 09:00")])
    work_end = StringField("до", default=deadlines.DEFAULT_END,
                           validators=[Regexp(_HH_MM, message="Время в формате ЧЧ:ММ, например 18:00")])
    escalate_to = SelectField("Если не перезвонили в срок, передать дело", choices=ESCALATE_TO, default="default")
    supervisor_id = SelectField("Руководитель", default="")

    # An option that needs a choice: (the option, the field to fill, what to say beside it).
    REQUIRES = (
        ("filter_by_numbers", "virtual_numbers", "Выберите хотя бы один виртуальный номер"),
        ("active", "default_responsible_id",
         "Выберите ответственного: ему достанутся звонки, в которых не было сотрудника"),
        ("create_communication", "communication_types", "Выберите типы звонков для коммуникаций"),
        ("save_unknown_employees", "unknown_employee_user_id",
         "Выберите пользователя, от имени которого сохранять звонки"),
    )

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not (self.work_start.errors or self.work_end.errors) and self.work_end.data <= self.work_start.data:
            self.work_end.errors.append("Конец рабочего дня должен быть позже начала")
            ok = False
        if self.route_to_manager.data and self.route_fallback.data == who_answers.DEFAULT \
                and not self.default_responsible_id.data:
            self.default_responsible_id.errors.append(
                "Выберите ответственного по умолчанию: ему пойдут звонки, когда менеджер недоступен")
            ok = False
        if self.escalate_to.data == "supervisor" and not self.supervisor_id.data:
            self.supervisor_id.errors.append("Выберите руководителя, которому передавать просроченные перезвоны")
            ok = False
        for option, needed, message in self.REQUIRES:
            if getattr(self, option).data and not getattr(self, needed).data:
                getattr(self, needed).errors.append(message)
                ok = False
        return ok


class ActionForm(RussianForm):
    """A bare POST with CSRF (refresh employees, rotate the secret)."""
