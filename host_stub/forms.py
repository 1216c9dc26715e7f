"""Forms of the cabinet shell."""
from flask import request
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Regexp

PHONE = Regexp(r"^\+?[\d\s()\-]{5,20}$", message="Номер: только цифры, например 79161234567")


class PageForm(FlaskForm):
    """A form a page posts, form-encoded."""

    class Meta:
        def wrap_formdata(self, form, formdata):
            # Flask-WTF would read a JSON body as well, whose numbers, lists and booleans no
            # field here expects: a JSON body fills no field.
            if request.is_json and not request.form:
                return None
            return super().wrap_formdata(form, formdata)


class LoginForm(PageForm):
    login = StringField("Логин", validators=[DataRequired("Введите логин"), Length(max=64)])
    password = PasswordField("Пароль", validators=[DataRequired("Введите пароль"), Length(max=200)])


class PluginToggleForm(PageForm):
    key = HiddenField(validators=[DataRequired()])
    enable = BooleanField()


class IncomingCallForm(PageForm):
    phone = StringField("Номер клиента", default="79161234567",
                        validators=[DataRequired("Введите номер"), PHONE])
    virtual_number = SelectField("Виртуальный номер")
    users = SelectMultipleField("Кому звонит", validators=[DataRequired("Выберите сотрудника")])
    ask_route = BooleanField("Спросить интеграцию, кому звонить (contact)", default=True)


class OutgoingCallForm(PageForm):
    user = SelectField("Сотрудник", validators=[DataRequired("Выберите сотрудника")])
    phone = StringField("Номер клиента", default="79161234567",
                        validators=[DataRequired("Введите номер"), PHONE])
    virtual_number = SelectField("С номера")


class CallActionForm(PageForm):
    call_id = HiddenField(validators=[DataRequired()])
    action = HiddenField(validators=[DataRequired()])
    user = HiddenField()
