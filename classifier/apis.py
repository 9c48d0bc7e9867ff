from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier import selectors
from fetalsite.api_utils import HasRequiredPerms
from patients.apis import JobOutputSerializer


class JobDetailApi(APIView):
    permission_classes = [HasRequiredPerms]
    required_perms = {"GET": ["classifier.view_classificationjob"]}

    @extend_schema(responses={200: JobOutputSerializer})
    def get(self, request, job_id: int):
        job = selectors.job_get(user=request.user, job_id=job_id)
        return Response(JobOutputSerializer(job).data)
