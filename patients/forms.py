from django import forms

from classifier.labels import FetalPlane


class DateInput(forms.DateInput):
    input_type = "date"


class PatientForm(forms.Form):
    mrn = forms.CharField(label="MRN", max_length=64)
    given_name = forms.CharField(max_length=100)
    family_name = forms.CharField(max_length=100)
    birth_date = forms.DateField(required=False, widget=DateInput, label="Date of birth")


class StudyForm(forms.Form):
    exam_date = forms.DateField(widget=DateInput)
    gestational_age_weeks = forms.IntegerField(required=False, min_value=0, max_value=45, label="GA weeks")
    gestational_age_days = forms.IntegerField(required=False, min_value=0, max_value=6, label="GA days")
    notes = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class UploadForm(forms.Form):
    file = forms.FileField(label="Ultrasound image", allow_empty_file=True)


class ReviewForm(forms.Form):
    label = forms.ChoiceField(choices=FetalPlane.choices)
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


def add_service_errors(form: forms.Form, error) -> None:
    """Show a service's ValidationError next to the matching fields."""
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
    else:
        form.add_error(None, error.messages)
