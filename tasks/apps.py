from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Background tasks"

    def ready(self):
        from core.status_reports import register_status_part
        from tasks.status import task_lines, tasks_report

        register_status_part("tasks", gather=tasks_report, lines=task_lines)
