app-name = crmsync
nav-tables = Таблицы
nav-sync = Синхронизация
nav-users = Пользователи
nav-sign-out = Выйти
lang-switch = English
sign-in = Войти
login = Логин
password = Пароль
wrong-login = Неверный логин или пароль.
too-many-attempts = Слишком много неверных паролей; попробуйте через { $seconds } с.
tables = Таблицы
table = Таблица
no-tables = Таблиц пока нет.
records-count = { $count ->
    [one] { $count } запись
    [few] { $count } записи
   *[many] { $count } записей
}
fields-count = { $count ->
    [one] { $count } поле
    [few] { $count } поля
   *[many] { $count } полей
}
new-table = Новая таблица
name = Название
create = Создать
save = Сохранить
add = Добавить
delete = Удалить
restore = Восстановить
search = Найти
show = Показать
status-active = Активные
status-deleted = Удалённые
status-all = Все
next-page = Следующая страница
first-page = В начало
new-record = Новая запись
fields = Поля
field-number = №
field-type = Тип
field-options = Параметры
choices-hint = Варианты, по одному в строке (список)
target-table = Связанная таблица (ссылка)
scale = Знаков после запятой (деньги)
record = Запись
history = История
history-from-user = { $user }
history-from-sync = через синхронизацию { $sync }
history-from-import = импорт, { $user }
history-from-web = в браузере, { $user }
history-from-api = через API, { $user }
history-from-rule = по правилу конфликтов синхронизации { $sync }
history-from-repair = при исправлении расхождений
op-create = создана
op-update = изменена
op-delete = удалена
op-restore = восстановлена
download = Скачать
upload = Загрузить
none = —
numbered-automatically = Присваивается при сохранении
numbering = Единая нумерация
numbering-none = Вводится вручную
numbering-here = Нумерует этот экземпляр (владелец нумерации)
numbering-from = Номера от
numbering-start = первый №
numbering-block = блок
sync-record = Синхронизировать
sync-record-done = Поставлено в отправку: { $count ->
    [one] { $count } синхронизация
    [few] { $count } синхронизации
   *[many] { $count } синхронизаций
}.
open-on-active = Открыть на активной стороне
saved = Сохранено.
users = Пользователи
full-name = ФИО
role = Роль
role-admin = Администратор
role-user = Пользователь
new-user = Новый пользователь
syncs = Синхронизации
no-syncs = Синхронизаций пока нет.
add-sync = Добавить синхронизацию
mode = Режим
mode-active = Активный
mode-passive = Пассивный
transport = Тип
transport-http = HTTP
transport-local = Локальные папки
transport-ftp = FTP
remote-access = Доступ к удалённой программе
remote-url = Адрес удалённой программы
sync-password = Пароль
sync-log = Вести лог
period = Период, секунд
user-match = Сопоставлять пользователей по
user-match-login = логину
user-match-full_name = ФИО
user-match-id = id
ftp-host = FTP-сервер
ftp-port = Порт
ftp-login = Логин
ftp-password = Пароль
ftp-tls = FTPS (TLS)
upload-dir = Папка выгрузки
download-dir = Папка загрузки
connected = Связь есть
not-connected = Нет связи
last-run = Последний запуск
never = ещё не было
pending-out = Ждут отправки
pending-in = Ждут получения
endpoint-url = Адрес для активной стороны
endpoint-hint = Вставьте этот адрес в синхронизацию на активной стороне.
sync-fields = Поля синхронизации
direction = Направление
direction-both = в обе стороны
direction-upload = только выгрузка
direction-download = только загрузка
direction-off = выключено
direction-change = Нажмите, чтобы сменить направление
remote-field = Поле на активной стороне
remote-field-typed = или его номер
choose-table = Таблица
whole-tables = Таблицы целиком
whole-tables-hint = Все поля таблицы, добавленной целиком, синхронизируются с направлением таблицы, как и поля, добавленные в неё позже. На пассивной стороне поля сопоставляются по имени с таблицей активной стороны; поле, у которого там нет поля с тем же именем, показано в проблемах.
remote-table = Таблица на активной стороне
add-whole-table = Добавить таблицу целиком
choose-field = Поле
initial-sync = Первичная синхронизация
initial-sync-field = Первичная синхронизация этого поля
job-running = Идёт: { $done } из { $total }
job-done = Готово: { $done } из { $total }
job-failed = Не удалось: { $error }
log = Лог
log-all = Все
log-errors = Ошибки
log-conflicts = Конфликты
log-empty = В логе ничего нет.
settings = Настройки
password-unchanged = оставьте пустым, чтобы не менять
delete-sync = Удалить синхронизацию
problems = Проблемы
dashboard = Последний час
changes-sent = отправлено
changes-received = получено
changes-per-minute = изменений в минуту
waiting-legend = ниже: изменения, ждущие отправки (сплошная) и получения (пунктир)
back = Назад
not-found = Не найдено
error = Ошибка
provenance = записано { $at } на { $instance }: побеждает более поздняя запись
provenance-rule-here = записано { $at } на { $instance }: поле изменили с обеих сторон, значение этого экземпляра оставлено по правилу конфликтов синхронизации
provenance-rule-there = записано { $at } на { $instance }: поле изменили с обеих сторон, значение другой стороны принято по правилу конфликтов синхронизации
provenance-replaced = поверх значения, записанного { $at } на { $instance }
instance-here = этом экземпляре
instance-peer = стороне «{ $sync }»
instance-other = экземпляре { $id }
mass-delete-share = Задерживать удаления больше этой доли таблицы, % (100: никогда)
match-title = Первичная синхронизация с сопоставлением по ключевому полю
match-explained = Записи, заведённые на обеих сторонах, сопоставляются по ключевому полю (телефон, email, ИНН), а не дублируются. Предпросмотр ничего не записывает.
match-key = Ключевое поле
match-preview = Предпросмотр
match-paired = Сопоставлено
match-already = уже одна запись
match-unchanged = уже совпадают
match-create-there = Будут созданы на другой стороне
match-create-here = Будут созданы здесь
match-overwrite-there = Значения будут перезаписаны на другой стороне
match-overwrite-here = Значения будут перезаписаны здесь
match-conflicts = Конфликты
match-here = Здесь
match-there = Там
match-run = Сопоставить и начать первичную синхронизацию
match-blocked = Некоторые значения ключа есть у нескольких записей на одной стороне; сначала объедините эти дубликаты или выберите другое ключевое поле.
conflict-policy = Если поле изменили с обеих сторон (выбирается на активной стороне)
conflict-newer = Побеждает более позднее изменение
conflict-this-side = Побеждает эта сторона
conflict-other-side = Побеждает другая сторона
conflict-field = Если изменили обе стороны
conflict-as-sync = Как у синхронизации
drift-check = Проверить расхождения
drift-differ = Записи с разными значениями
drift-only-here = Только на этой стороне
drift-only-there = Только на другой стороне
drift-none = На обеих сторонах одинаковые значения.
drift-repair = Исправить: побеждают значения этой стороны
drift-repaired = { $count ->
    [one] { $count } запись переписана; она уходит на другую сторону.
    [few] { $count } записи переписаны; они уходят на другую сторону.
   *[many] { $count } записей переписано; они уходят на другую сторону.
}
held-changes = Задержанные изменения
held-quarantine = пока не может быть применено здесь
held-mass-delete = удаление ждёт подтверждения
approve = Подтвердить
discard = Отклонить
held-count = { $count ->
    [one] { $count } задержанное изменение
    [few] { $count } задержанных изменения
   *[many] { $count } задержанных изменений
}
