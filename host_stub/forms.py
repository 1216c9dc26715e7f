"""Forms of the cabinet shell."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Regexp

PHONE = Regexp(r"^\+?[\d\s()\-]{5,20}$", message="Номер: только цифры, например 79161234567")


class LoginForm(FlaskForm):
    login = StringField("Логин", validators=[DataRequired("Введите логин"), Length(max=64)])
    password = PasswordField("Пароль", validators=[DataRequired("Введите пароль"), Length(max=200)])


class PluginToggleForm(FlaskForm):
    key = HiddenField(validators=[DataRequired()])
    enable = BooleanField()


class IncomingCallForm(FlaskForm):
    phone = StringField("Номер клиента", default="79161234567",
                        validators=[DataRequired("Введите номер"), PHONE])
    virtual_number = SelectField("Виртуальный номер")
    users = SelectMultipleField("Кому звонит", validators=[DataRequired("Выберите сотрудника")])
    ask_route = BooleanField("Спросить интеграцию, кому звонить (contact)", default=True)


class OutgoingCallForm(FlaskForm):
    user = SelectField("Сотрудник", validators=[DataRequired("Выберите сотрудника")])
    phone = StringField("Номер клиента", default="79161234567",
                        validators=[DataRequired("Введите номер"), PHONE])
    virtual_number = SelectField("С номера")


class CallActionForm(FlaskForm):
    call_id = HiddenField(validators=[DataRequired()])
    action = HiddenField(validators=[DataRequired()])
    user = HiddenField()
